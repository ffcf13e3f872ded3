"""Who is watching a deploy, kept in Redis so every daphne process sees the same list.

Three keys per deploy, changed together by one Lua script so they never disagree:
- `…:sockets`, a sorted set with one member per open socket ("<channel name>|<username>"), scored by
  the last time the socket was seen (join or ping): a socket that vanished without a close (daphne
  killed) drops out after STALE_SECONDS instead of haunting the list;
- `…:counts`, a hash of open sockets per username;
- `…:names`, a sorted set of the usernames with a socket open, all scored 0 so Redis keeps them in
  byte order — the first MAX_NAMES come back without sorting anything.

Why a script and not a read of the whole set: the frame needs the number of distinct users and a few
names, and reading every member on every join was quadratic — 34 % of daphne's CPU while 10,000
sockets subscribed (py-spy, docs/benchmarks.md). Now a join or leave costs O(log N) in Redis.
"""

from __future__ import annotations

import time

from . import redis as herald_redis

STALE_SECONDS = 90  # three missed pings of the page's 20-30 s cadence
# Joins and leaves are broadcast to the deploy's group at most this often: with thousands of watchers
# a broadcast per join would be quadratic. Every pong also carries the list, so views converge.
BROADCAST_EVERY_MS = 2000
MAX_NAMES = 20
# Stale sockets swept per update: bounds the time one script holds Redis; the next update sweeps on.
SWEEP_AT_MOST = 500

# KEYS: sockets, counts, names. ARGV: op ("seen" | "gone"), member, username, now, stale before, ttl,
# max names, sweep at most. Channel names never contain "|", so a username follows a member's first "|".
_UPDATE_LUA = """
local sockets, counts, names = KEYS[1], KEYS[2], KEYS[3]
local function drop(user)
  if redis.call('HINCRBY', counts, user, -1) <= 0 then
    redis.call('HDEL', counts, user)
    redis.call('ZREM', names, user)
  end
end
if ARGV[1] == 'seen' then
  if redis.call('ZADD', sockets, ARGV[4], ARGV[2]) == 1 then
    redis.call('HINCRBY', counts, ARGV[3], 1)
    redis.call('ZADD', names, 0, ARGV[3])
  end
elseif redis.call('ZREM', sockets, ARGV[2]) == 1 then
  drop(ARGV[3])
end
local stale = redis.call('ZRANGEBYSCORE', sockets, '-inf', ARGV[5], 'LIMIT', 0, ARGV[8])
for _, member in ipairs(stale) do
  redis.call('ZREM', sockets, member)
  drop(string.match(member, '^[^|]*|(.*)$'))
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[6])
end
return {redis.call('ZCARD', names), redis.call('ZRANGE', names, 0, tonumber(ARGV[7]) - 1)}
"""

_script = None


def _key(deploy_id: int) -> str:
    return f"herald:watchers:{deploy_id}"


def seen(deploy_id: int, channel_name: str, username: str) -> dict:
    """Record (or refresh) a watcher; returns the `watchers` frame for the deploy."""
    return _update(deploy_id, "seen", channel_name, username)


def gone(deploy_id: int, channel_name: str, username: str) -> dict:
    return _update(deploy_id, "gone", channel_name, username)


def may_broadcast(deploy_id: int) -> bool:
    """True for at most one caller per BROADCAST_EVERY_MS per deploy."""
    return bool(herald_redis.client().set(f"{_key(deploy_id)}:sent", 1, nx=True, px=BROADCAST_EVERY_MS))


def _update(deploy_id: int, op: str, channel_name: str, username: str) -> dict:
    global _script
    client = herald_redis.client()
    if _script is None:
        _script = client.register_script(_UPDATE_LUA)  # redis-py re-loads it after a Redis restart
    now = time.time()
    key = _key(deploy_id)
    count, names = _script(
        keys=[f"{key}:sockets", f"{key}:counts", f"{key}:names"],
        args=[
            op,
            f"{channel_name}|{username}",
            username,
            now,
            now - STALE_SECONDS,
            STALE_SECONDS * 2,
            MAX_NAMES,
            SWEEP_AT_MOST,
        ],
        client=client,
    )
    return {"type": "watchers", "count": count, "users": [name.decode() for name in names]}
