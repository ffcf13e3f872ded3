"""Herald's settings (herald.settings.base, as the local profile uses) with channels_redis'
RedisPubSubChannelLayer instead of RedisChannelLayer, measured side by side as `herald-pubsub`.

RedisChannelLayer copies a group message into one Redis list per member (a Lua loop over the group),
and every subscriber's channel is popped and decoded separately; the pub/sub layer PUBLISHes once and
each daphne process decodes the message once per subscriber from one subscription.
"""

from herald.settings.base import *  # noqa: F403
from herald.settings.base import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "herald:asgi"},
    }
}
