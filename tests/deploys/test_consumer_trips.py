"""deploys/consumers/trips.py: the lookups of sockets that connect together share a hop to daphne's
database thread, each with its own result or exception."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deploys.consumers import trips


@pytest.fixture
def hops(monkeypatch):
    """The lookups of each hop; a hop waits on the database thread until `gate` is set (it starts set)."""
    seen, gate, real = [], threading.Event(), trips._run_all
    gate.set()

    def run_all(lookups):
        seen.append(len(lookups))
        gate.wait(10)
        return real(lookups)

    monkeypatch.setattr(trips, "_run_all", run_all)
    run_all.seen, run_all.gate = seen, gate
    return run_all


async def test_a_lone_lookup_hops_at_once_and_alone(hops):
    assert await trips.run(lambda: threading.current_thread().name) != threading.current_thread().name
    assert hops.seen == [1]


async def test_lookups_that_wait_during_a_hop_share_the_next_ones_a_batch_at_most_each(hops):
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(lambda: 0))
    while not hops.seen:  # the first hop is on the database thread, held there
        await asyncio.sleep(0.01)
    rest = [asyncio.ensure_future(trips.run(lambda i=i: i)) for i in range(1, trips.BATCH + 11)]
    await asyncio.sleep(0.05)
    hops.gate.set()
    assert await asyncio.gather(first, *rest) == list(range(trips.BATCH + 11))
    assert hops.seen == [1, trips.BATCH, 10]


async def test_a_failing_lookup_fails_only_its_own_caller(hops):
    hops.gate.clear()
    first = asyncio.ensure_future(trips.run(lambda: "first"))
    while not hops.seen:
        await asyncio.sleep(0.01)

    def broken():
        raise LookupError("no such session")

    results = [asyncio.ensure_future(trips.run(f)) for f in (lambda: "before", broken, lambda: "after")]
    hops.gate.set()
    assert await first == "first"
    assert await results[0] == "before" and await results[2] == "after"
    with pytest.raises(LookupError, match="no such session"):
        await results[1]
    assert hops.seen == [1, 3]


async def test_a_caller_that_goes_away_leaves_the_others_their_results(hops):
    hops.gate.clear()
    gone = asyncio.ensure_future(trips.run(lambda: "gone"))
    while not hops.seen:
        await asyncio.sleep(0.01)
    staying = asyncio.ensure_future(trips.run(lambda: "staying"))
    await asyncio.sleep(0.01)
    gone.cancel()  # its socket closed mid-hop
    hops.gate.set()
    assert await staying == "staying"
    with pytest.raises(asyncio.CancelledError):
        await gone
