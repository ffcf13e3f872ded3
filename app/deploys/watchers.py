"""Who is watching a deploy: a Redis sorted set per deploy, one member per open socket.

A member's score is the last time its socket was seen (join or ping), so a socket that vanished
without a close (daphne killed) drops out after STALE_SECONDS instead of haunting the list.
"""

from __future__ import annotations

import time

from . import redis as herald_redis

STALE_SECONDS = 90  # three missed pings of the page's 20-30 s cadence
# Joins and leaves are broadcast to the deploy's group at most this often: with thousands of watchers
# a broadcast per join would be quadratic. Every pong also carries the list, so views converge.
BROADCAST_EVERY_MS = 2000
MAX_NAMES = 20


def _key(deploy_id: int) -> str:
    return f"herald:watchers:{deploy_id}"


def seen(deploy_id: int, channel_name: str, username: str) -> dict:
    """Record (or refresh) a watcher; returns the `watchers` frame for the deploy."""
    return _update(deploy_id, add={f"{channel_name}|{username}": time.time()})


def gone(deploy_id: int, channel_name: str, username: str) -> dict:
    return _update(deploy_id, remove=f"{channel_name}|{username}")


def may_broadcast(deploy_id: int) -> bool:
    """True for at most one caller per BROADCAST_EVERY_MS per deploy."""
    return bool(herald_redis.client().set(f"{_key(deploy_id)}:sent", 1, nx=True, px=BROADCAST_EVERY_MS))


def _update(deploy_id: int, add: dict | None = None, remove: str | None = None) -> dict:
    key, now = _key(deploy_id), time.time()
    pipe = herald_redis.client().pipeline()
    if add:
        pipe.zadd(key, add)
    if remove:
        pipe.zrem(key, remove)
    pipe.zremrangebyscore(key, 0, now - STALE_SECONDS)
    pipe.expire(key, STALE_SECONDS * 2)
    pipe.zrange(key, 0, -1)
    members = pipe.execute()[-1]
    users = sorted({m.decode().rsplit("|", 1)[1] for m in members})
    return {"type": "watchers", "count": len(users), "users": users[:MAX_NAMES]}
