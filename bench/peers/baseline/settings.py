"""Settings of the tutorial-style baseline: nothing beyond what the Channels tutorial sets up."""

import os

SECRET_KEY = "bench-baseline-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels"]
ROOT_URLCONF = "bench.peers.baseline.app"
ASGI_APPLICATION = "bench.peers.baseline.app.application"
DATABASES = {}
USE_TZ = True
# channels-redis with its defaults (capacity 100, expiry 60 s), as the tutorial configures it.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["BASELINE_REDIS_URL"]]},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
