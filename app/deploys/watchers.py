"""Who is watching a deploy, kept in Redis so every daphne process sees the same list.

Three keys per deploy, changed together by one Lua script so they never disagree:
- `…:sockets`, a sorted set with one member per open socket ("<channel name>|<username>"), scored by
  the last time the socket was seen (join or ping): a socket that vanished without a close (daphne
  killed) drops out after STALE_SECONDS instead of haunting the list;
- `…:counts`, a hash of open sockets per username;
- `…:names`, a sorted set of the usernames with a socket open, all scored 0 so Redis keeps them in
  byte order — the first MAX_NAMES come back without sorting anything.

A fourth, `…:sent`, is the permit to broadcast the list, which the same script hands out at most every
BROADCAST_EVERY_MS.

Why a script and not a read of the whole set: the frame needs the number of distinct users and a few
names, and reading every member on every join was quadratic — 34 % of daphne's CPU while 10,000
sockets subscribed (py-spy, docs/benchmarks.md). Now a join or leave costs O(log N) in Redis, and one
run takes any number of changes: a daphne sends those of its sockets that open, ping or close together
in one run (consumers/watching.py).
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

# KEYS: sockets, counts, names, the broadcast permit. ARGV: now, stale before, ttl, max names, sweep at
# most, permit milliseconds (0: none asked for), then one (op "seen" | "gone", member, username) triple
# per change. Channel names never contain "|", so a username follows a member's first "|".
_UPDATE_LUA = """
local sockets, counts, names, permit = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function drop(user)
  if redis.call('HINCRBY', counts, user, -1) <= 0 then
    redis.call('HDEL', counts, user)
    redis.call('ZREM', names, user)
  end
end
for i = 7, #ARGV, 3 do
  local member, user = ARGV[i + 1], ARGV[i + 2]
  if ARGV[i] == 'seen' then
    if redis.call('ZADD', sockets, ARGV[1], member) == 1 then
      redis.call('HINCRBY', counts, user, 1)
      redis.call('ZADD', names, 0, user)
    end
  elseif redis.call('ZREM', sockets, member) == 1 then
    drop(user)
  end
end
local stale = redis.call('ZRANGEBYSCORE', sockets, '-inf', ARGV[2], 'LIMIT', 0, ARGV[5])
for _, member in ipairs(stale) do
  redis.call('ZREM', sockets, member)
  drop(string.match(member, '^[^|]*|(.*)$'))
end
for i = 1, 3 do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
local granted = 0
if tonumber(ARGV[6]) > 0 and redis.call('SET', permit, 1, 'NX', 'PX', ARGV[6]) then
  granted = 1
end
return {redis.call('ZCARD', names), redis.call('ZRANGE', names, 0, tonumber(ARGV[4]) - 1), granted}
"""

_script = None


def _key(deploy_id: int) -> str:
    return f"herald:watchers:{deploy_id}"


def seen(deploy_id: int, socket_id: str, username: str) -> dict:
    """Record (or refresh) a watcher; returns the `watchers` frame for the deploy."""
    return update(deploy_id, [("seen", socket_id, username)])[0]


def gone(deploy_id: int, socket_id: str, username: str) -> dict:
    return update(deploy_id, [("gone", socket_id, username)])[0]


def update(deploy_id: int, changes: list[tuple[str, str, str]], broadcast: bool = False) -> tuple[dict, bool]:
    """Apply `changes` — (op "seen" | "gone", socket id, username) — in order, in one script run.

    Returns the deploy's `watchers` frame after all of them and, when `broadcast` asks for it, whether
    this caller may broadcast the list now: True for at most one caller per BROADCAST_EVERY_MS per deploy.
    """
    global _script
    client = herald_redis.client()
    if _script is None:
        _script = client.register_script(_UPDATE_LUA)  # redis-py re-loads it after a Redis restart
    now = time.time()
    key = _key(deploy_id)
    args = [
        now,
        now - STALE_SECONDS,
        STALE_SECONDS * 2,
        MAX_NAMES,
        SWEEP_AT_MOST,
        BROADCAST_EVERY_MS if broadcast else 0,
    ]
    for op, socket_id, username in changes:
        args += [op, f"{socket_id}|{username}", username]
    count, names, granted = _script(
        keys=[f"{key}:sockets", f"{key}:counts", f"{key}:names", f"{key}:sent"], args=args, client=client
    )
    return {"type": "watchers", "count": count, "users": [name.decode() for name in names]}, bool(granted)
