"""deploys/consumers/trips.py: the lookups of sockets that connect together share a hop to daphne's
database thread, each with its own result or exception."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY

from deploys.consumers import trips
from herald.sessions import SessionStore

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hops(monkeypatch):
    """The trips of each hop; a hop waits on the database thread until `gate` is set (it starts set)."""
    seen, gate, real = [], threading.Event(), trips._run_all
    gate.set()

    def run_all(batch):
        seen.append(len(batch))
        gate.wait(10)
        return real(batch)

    monkeypatch.setattr(trips, "_run_all", run_all)
    run_all.seen, run_all.gate = seen, gate
    return run_all


@pytest.fixture
async def key(engineer) -> str:
    """The session key of a signed-in engineer."""
    return (await sync_to_async(session_cookie)(engineer)).decode().split("=", 1)[1]


async def test_a_lone_lookup_hops_at_once_and_alone(hops, key, engineer):
    user, thread = await trips.run(key, lambda: threading.current_thread().name)
    assert user == (engineer.pk, engineer.username)
    assert thread != threading.current_thread().name
    assert hops.seen == [1]


async def test_anyone_not_signed_in_gets_none_and_load_is_not_called(hops, key):
    def load():
        raise AssertionError("load() runs for signed-in users only")

    assert await trips.run(None, load) == (None, None)
    assert await trips.run("no-such-session-key", load) == (None, None)


async def test_lookups_that_wait_during_a_hop_share_the_next_ones_a_batch_at_most_each(hops, key):
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(key, lambda: 0))
    while not hops.seen:  # the first hop is on the database thread, held there
        await asyncio.sleep(0.01)
    rest = [asyncio.ensure_future(trips.run(key, lambda i=i: i)) for i in range(1, trips.BATCH + 11)]
    await asyncio.sleep(0.05)
    hops.gate.set()
    assert [loaded for _, loaded in await asyncio.gather(first, *rest)] == list(range(trips.BATCH + 11))
    assert hops.seen == [1, trips.BATCH, 10]


async def test_a_batch_mixing_users_and_strangers_answers_each_as_alone(hops, key, engineer, watcher):
    other = (await sync_to_async(session_cookie)(watcher)).decode().split("=", 1)[1]
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(key, lambda: "first"))
    while not hops.seen:
        await asyncio.sleep(0.01)
    batch = [(key, "a"), (None, "b"), (other, "c"), ("no-such-session-key", "d"), (key, "e")]
    results = [asyncio.ensure_future(trips.run(k, lambda v=v: v)) for k, v in batch]
    hops.gate.set()
    assert await first == ((engineer.pk, engineer.username), "first")
    assert await asyncio.gather(*results) == [
        ((engineer.pk, engineer.username), "a"),
        (None, None),
        ((watcher.pk, watcher.username), "c"),
        (None, None),
        ((engineer.pk, engineer.username), "e"),
    ]
    assert hops.seen == [1, 5]


async def test_a_failing_lookup_fails_only_its_own_caller(hops, key):
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(key, lambda: "first"))
    while not hops.seen:
        await asyncio.sleep(0.01)

    def broken():
        raise LookupError("no such deploy")

    results = [asyncio.ensure_future(trips.run(key, f)) for f in (lambda: "before", broken, lambda: "after")]
    hops.gate.set()
    assert (await first)[1] == "first"
    assert (await results[0])[1] == "before" and (await results[2])[1] == "after"
    with pytest.raises(LookupError, match="no such deploy"):
        await results[1]
    assert hops.seen == [1, 3]


async def test_a_session_the_batch_cannot_read_fails_only_its_own_socket(hops, key, engineer):
    """A session whose user id is not an id makes the batched read raise: each socket of that batch is
    then looked up alone, so only the broken session's socket gets the error."""

    def corrupt():
        session = SessionStore()
        session[SESSION_KEY] = "not-a-number"
        session.save()
        return session.session_key

    bad = await sync_to_async(corrupt)()
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(key, lambda: "first"))
    while not hops.seen:
        await asyncio.sleep(0.01)
    results = [asyncio.ensure_future(trips.run(k, lambda: "loaded")) for k in (key, bad, key)]
    hops.gate.set()
    await first
    assert await results[0] == await results[2] == ((engineer.pk, engineer.username), "loaded")
    with pytest.raises(Exception, match="not-a-number"):
        await results[1]


async def test_a_caller_that_goes_away_leaves_the_others_their_results(hops, key):
    hops.gate.clear()
    gone = asyncio.ensure_future(trips.run(key, lambda: "gone"))
    while not hops.seen:
        await asyncio.sleep(0.01)
    staying = asyncio.ensure_future(trips.run(key, lambda: "staying"))
    await asyncio.sleep(0.01)
    gone.cancel()  # its socket closed mid-hop
    hops.gate.set()
    assert (await staying)[1] == "staying"
    with pytest.raises(asyncio.CancelledError):
        await gone
