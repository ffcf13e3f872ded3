"""Sends stored events to the channel layer from synchronous code (uWSGI views, Celery tasks).

`async_to_sync` starts a fresh event loop per call when no loop runs in the thread, and
channels_redis keeps its connection pools per loop, so every publish would open new Redis
connections. Instead each process keeps one background thread with one long-lived loop, and
synchronous callers hand it coroutines. The thread is created lazily and again after a fork.

Only events.record() calls publish_batch() (tests aside): it runs after the transaction that stored
the events committed, so a consumer that fills a gap from the database always finds them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer

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
PUBLISH_TIMEOUT = 5.0


def deploy_group(deploy_id: int) -> str:
    return f"deploy.{deploy_id}"


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        thread = threading.Thread(target=self.loop.run_forever, name="herald-publisher", daemon=True)
        thread.start()

    def run(self, coro, timeout: float = PUBLISH_TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_loop: _LoopThread | None = None
_loop_lock = threading.Lock()


def run(coro, timeout: float = PUBLISH_TIMEOUT):
    """Run a coroutine on this process's publisher loop and wait for its result."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.pid != os.getpid():
            _loop = _LoopThread()
    return _loop.run(coro, timeout)


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
        run(_send(deploy_id, message, summary if dashboard_changed else None, fresh))
    except Exception:  # stored events are never lost: sockets fill gaps from the database by seq
        log.warning(
            "could not publish events %s–%s of deploy %s", wire[0]["seq"], wire[-1]["seq"], deploy_id, exc_info=True
        )


def _first_time(notice_id: str) -> bool:
    """True only for the first publisher of a notice: dashboards never see it twice, even when a
    retried task or a replayed publish produces it again."""
    return bool(herald_redis.client().set(f"herald:notice:{notice_id}", 1, nx=True, ex=NOTICE_TTL_SECONDS))


async def _send(deploy_id: int, message: dict, summary: dict | None, notices: list[dict]) -> None:
    layer = get_channel_layer()
    await layer.group_send(deploy_group(deploy_id), message)
    if summary is not None or notices:
        await layer.group_send(DASHBOARD_GROUP, {"type": "dashboard.update", "deploy": summary, "notices": notices})


def send_to_channel(channel_name: str, message: dict) -> None:
    """Send one message to one consumer (log-follow lines go to exactly one socket)."""
    run(get_channel_layer().send(channel_name, message))
