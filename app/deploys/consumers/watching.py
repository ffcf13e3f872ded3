"""The watcher-list changes of this process's sockets, sent to Redis together.

Every socket that opens, pings or closes changes its deploy's watcher list (deploys/watchers.py): a
Redis script run on a worker thread. When a restarted daphne takes back thousands of sockets of one
deploy, a thread hop and a round trip per socket were ≈ 8 % of daphne's CPU per connect
(docs/benchmarks.md, 7 December). Here a deploy's changes queue while a run for that deploy is in
flight, and the next run takes all of them: a lone change still goes at once, alone, while under load
one run serves hundreds of sockets. Every socket of a run gets the same result — the same `watchers`
frame, framed once — and the run, not each socket, decides whether the deploy's group hears it.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from .. import watchers
from ..publisher import deploy_group
from . import fanout

log = logging.getLogger(__name__)

# Join/leave broadcasts go only to deploys this process holds at most this many sockets of: a broadcast
# costs a frame per socket, so with N sockets joining (a ramp, a storm) it cost N/2 frames a second —
# more daphne CPU than the joins themselves (docs/benchmarks.md). Larger audiences learn the list at
# their next pong, which always carries it (docs/protocol.md promises "at most every 2 s").
BROADCAST_WATCHERS_UP_TO = 50


class Change:
    """One socket's change, waiting for the run that applies it."""

    __slots__ = ("announce", "op", "result", "socket_id", "username")

    def __init__(self, op: str, socket_id: str, username: str, announce: bool):
        self.op, self.socket_id, self.username, self.announce = op, socket_id, username, announce
        self.result: asyncio.Future = asyncio.get_running_loop().create_future()


# Keyed by (event loop, deploy id): a test suite runs many loops in one process.
_queued: dict[tuple, list[Change]] = {}  # changes not yet in a run
_running: dict[tuple, asyncio.Task] = {}  # the task running a deploy's changes


async def change(deploy_id: int, op: str, socket_id: str, username: str, announce: bool) -> dict:
    """Apply a watcher change ("seen" or "gone"). Returns the run's shared result, a group message
    `{"type": "deploy.watchers", "frame": …, "broadcast": bool}`: when `broadcast` is True the
    deploy's group (this socket included, if it is still in it) hears the frame; otherwise the caller
    sends it itself if it wants to. `announce` asks for a broadcast (a join or a leave; not a ping)."""
    item = Change(op, socket_id, username, announce)
    key = (asyncio.get_running_loop(), deploy_id)
    _queued.setdefault(key, []).append(item)
    if key not in _running:
        _running[key] = asyncio.ensure_future(_run(key))
    return await asyncio.shield(item.result)  # a socket closing mid-run must not cancel the others' run


async def _run(key: tuple) -> None:
    """Apply the deploy's queued changes, a batch per script run, until none are left."""
    deploy_id = key[1]
    try:
        while batch := _queued.pop(key, None):
            try:
                result = await _apply(deploy_id, batch)
            except Exception as exc:
                log.warning("watcher list of deploy %s not updated: %r", deploy_id, exc)
                for item in batch:
                    item.result.set_exception(exc)
                    item.result.exception()  # retrieved here: a caller that went away logs nothing
            else:
                for item in batch:
                    item.result.set_result(result)
    finally:
        del _running[key]


async def _apply(deploy_id: int, batch: list[Change]) -> dict:
    group = deploy_group(deploy_id)
    local = fanout.local_group(group)
    wants = any(item.announce for item in batch) and (local is None or len(local.members) <= BROADCAST_WATCHERS_UP_TO)
    changes = [(item.op, item.socket_id, item.username) for item in batch]
    # thread_sensitive=False: Redis round trips (a thread-safe client) need not queue behind the database
    # calls on daphne's one thread-sensitive executor thread.
    frame, granted = await sync_to_async(watchers.update, thread_sensitive=False)(deploy_id, changes, wants)
    message = {"type": "deploy.watchers", "frame": frame, "broadcast": granted}
    if granted:
        await get_channel_layer().group_send(group, {"type": "deploy.watchers", "frame": frame})
    return message
