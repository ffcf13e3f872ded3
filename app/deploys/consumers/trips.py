"""The connect-time database trips of sockets that connect together, taken in one hop to the database thread.

daphne runs every database call of a process on one thread (channels' database_sync_to_async), and
each call hops there and back on its own: a thread-pool submit, a future chained to the event loop,
a wake-up of the loop. When a restarted daphne takes back thousands of sockets, those hops were
≈ 10 % of its CPU per connect (py-spy, docs/benchmarks.md, 7 December), on top of the lookups
themselves. Here the lookups that are waiting while a batch runs go together in the next hop, at
most BATCH at a time, each with its own result or exception; a lone lookup still goes at once,
alone. In a hop the sessions of the batch are read in one statement and their users in another
(herald/ws_auth.py), then each signed-in socket's load() runs, in the order the sockets connected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from channels.db import database_sync_to_async

from herald.ws_auth import user_for_session_key, users_for_session_keys

# Bounds how long the first lookup of a batch waits for the others (≈ 0.3–0.5 ms each here).
BATCH = 50

# Keyed by event loop: a test suite runs many loops in one process.
_waiting: dict[asyncio.AbstractEventLoop, list[tuple[tuple[str | None, Callable], asyncio.Future]]] = {}
_running: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


async def run(key: str | None, load: Callable) -> tuple:
    """On the database thread, in the next batch: the user of the session `key` and, if signed in,
    load(). Returns ((user pk, username), what load() returned), or (None, None) for anyone not signed
    in (load() is not called); raises what the lookup or load() raised."""
    loop = asyncio.get_running_loop()
    result = loop.create_future()
    _waiting.setdefault(loop, []).append(((key, load), result))
    if loop not in _running:
        _running[loop] = asyncio.ensure_future(_drain(loop))
    return await asyncio.shield(result)  # a socket closing mid-batch must not cancel the others' lookups


async def _drain(loop: asyncio.AbstractEventLoop) -> None:
    batch: list[tuple[tuple[str | None, Callable], asyncio.Future]] = []
    try:
        while waiting := _waiting.get(loop):
            batch, _waiting[loop] = waiting[:BATCH], waiting[BATCH:]
            try:
                outcomes = await database_sync_to_async(_run_all)([trip for trip, _ in batch])
            except Exception as exc:  # the hop itself failed (closing old connections): so did its lookups
                outcomes = [(False, exc)] * len(batch)
            for (_, result), (ok, value) in zip(batch, outcomes, strict=True):
                if ok:
                    result.set_result(value)
                else:
                    result.set_exception(value)
                    result.exception()  # retrieved: a socket that went away logs nothing
    finally:
        # Only when this task is cancelled (its loop is closing) are lookups left: nobody will run them.
        for _, result in batch + _waiting.pop(loop, []):
            if not result.done():
                result.cancel()
        del _running[loop]


def _run_all(trips: list[tuple[str | None, Callable]]) -> list[tuple[bool, object]]:
    try:
        users = users_for_session_keys([key for key, _ in trips])
    except Exception:
        if len(trips) == 1:
            raise  # alone already, so no second read: _drain hands the error to its one socket
        users = [None] * len(trips)  # one socket's bad session must not fail the others: each alone
    outcomes = []
    for (key, load), user in zip(trips, users, strict=True):
        try:
            user = user_for_session_key(key) if user is None else user
            outcomes.append((True, ((user.pk, user.get_username()), load()) if user.is_authenticated else (None, None)))
        except Exception as exc:  # one socket's failure is that socket's alone
            outcomes.append((False, exc))
    return outcomes
