"""Sends stored events to the channel layer from synchronous code (uWSGI views, Celery tasks).

A PUBLISH on the process's one synchronous Redis client (deploys/redis.py), with the message
serialised by the channel layer itself and sent to the channel its `group_send`/`send` would use.
Going through the layer's own coroutines from sync code needs an event loop: `async_to_sync` builds
one per call (and channels_redis new connections per loop), and handing coroutines to a loop thread
cost a POST two thread switches and the loop's bookkeeping, about a tenth of its uWSGI CPU
(docs/benchmarks.md, 7 December, evening). tests/deploys/test_publisher.py holds the names and the
wire format to what the layer's receivers read.

Only events.record() calls publish_batch() (tests aside): it runs after the transaction that stored
the events committed, so a consumer that fills a gap from the database always finds them.
"""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import redis as herald_redis

log = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"
# Inline at most this many events (and this much data) in one channel message; bigger batches are
# sent as a seq range and every subscribed socket reads them back from the database. The count
# matches the API's MAX_EVENTS, so a full ingest batch reaches sockets without that per-socket read;
# the byte cap still keeps Redis messages bounded.
INLINE_EVENTS = 1000
INLINE_BYTES = 256 * 1024
NOTICE_TTL_SECONDS = 7 * 86400


def deploy_group(deploy_id: int) -> str:
    return f"deploy.{deploy_id}"


def _group_channel(group: str) -> str:
    """The Redis channel RedisPubSubChannelLayer publishes a group's messages on."""
    return f"{settings.CHANNEL_LAYERS['default']['CONFIG'].get('prefix', 'asgi')}__group__{group}"


def _publish(channel: str, message: dict) -> None:
    if settings.CHANNEL_LAYERS["default"]["CONFIG"].get("hosts") != [settings.REDIS_URL]:
        # The layer would shard channels over several hosts; this client talks to REDIS_URL only.
        raise ImproperlyConfigured("the channel layer's hosts must be [REDIS_URL] for deploys.publisher")
    herald_redis.client().publish(channel, get_channel_layer().serialize(message))


def publish_batch(
    deploy_id: int, rows: list, summary: dict | None, dashboard_changed: bool, notices: list[dict]
) -> None:
    """Publish one stored batch: one message to the deploy's group, one to the dashboard's.

    `rows` are the stored events as DeployEvents or already in wire form (as_wire() dicts, which
    record() builds without a model instance per event)."""
    wire = [row if isinstance(row, dict) else row.as_wire() for row in rows]
    message = {
        "type": "deploy.events",
        "first": wire[0]["seq"],
        "last": wire[-1]["seq"],
        "summary": summary if dashboard_changed else None,
    }
    if len(wire) <= INLINE_EVENTS and sum(len(str(e["data"])) for e in wire) <= INLINE_BYTES:
        message["events"] = wire
    try:
        fresh = [n for n in notices if _first_time(n["id"])]
        _send(deploy_id, message, summary if dashboard_changed else None, fresh)
    except Exception:  # stored events are never lost: sockets fill gaps from the database by seq
        log.warning(
            "could not publish events %s–%s of deploy %s", wire[0]["seq"], wire[-1]["seq"], deploy_id, exc_info=True
        )


def _first_time(notice_id: str) -> bool:
    """True only for the first publisher of a notice: dashboards never see it twice, even when a
    retried task or a replayed publish produces it again."""
    return bool(herald_redis.client().set(f"herald:notice:{notice_id}", 1, nx=True, ex=NOTICE_TTL_SECONDS))


def _send(deploy_id: int, message: dict, summary: dict | None, notices: list[dict]) -> None:
    _publish(_group_channel(deploy_group(deploy_id)), message)
    if summary is not None or notices:
        _publish(_group_channel(DASHBOARD_GROUP), {"type": "dashboard.update", "deploy": summary, "notices": notices})


def send_to_channel(channel_name: str, message: dict) -> None:
    """Send one message to one consumer (log-follow lines go to exactly one socket)."""
    _publish(channel_name, message)
