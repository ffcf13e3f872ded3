"""deploys/consumers/watching.py: a deploy's watcher changes that arrive together go to Redis in one
script run, against a real redis-server."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deploys import watchers
from deploys.consumers import watching


@pytest.fixture
def runs(monkeypatch):
    """Each script run's changes; a run waits until `gate` is set (it starts set)."""
    seen, gate, real = [], threading.Event(), watchers.update
    gate.set()

    def update(deploy_id, changes, broadcast=False):
        seen.append((deploy_id, list(changes), broadcast))
        gate.wait(10)
        return real(deploy_id, changes, broadcast)

    monkeypatch.setattr(watchers, "update", update)
    update.gate = gate
    update.seen = seen
    return update


async def test_a_lone_change_runs_at_once_and_alone(runs):
    result = await watching.change(7, "seen", "s1", "walt", announce=False)
    assert result["frame"] == {"type": "watchers", "count": 1, "users": ["walt"]}
    assert result["broadcast"] is False
    assert runs.seen == [(7, [("seen", "s1", "walt")], False)]


async def test_changes_that_arrive_during_a_run_share_the_next_one(runs):
    runs.gate.clear()
    first = asyncio.ensure_future(watching.change(7, "seen", "s0", "walt", announce=False))
    while not runs.seen:  # the first run has started and is waiting on Redis
        await asyncio.sleep(0.01)
    rest = [
        asyncio.ensure_future(watching.change(7, "seen", f"s{i}", f"user{i}", announce=False)) for i in range(1, 40)
    ]
    await asyncio.sleep(0.05)
    runs.gate.set()
    results = await asyncio.gather(first, *rest)
    assert [len(changes) for _, changes, _ in runs.seen] == [1, 39]
    assert all(r is results[1] for r in results[1:])  # one shared result: one frame for the whole run
    assert results[-1]["frame"]["count"] == 40


async def test_each_deploy_has_its_own_runs(runs):
    a, b = await asyncio.gather(
        watching.change(7, "seen", "s1", "walt", announce=False),
        watching.change(8, "seen", "s2", "rita", announce=False),
    )
    assert (a["frame"]["users"], b["frame"]["users"]) == (["walt"], ["rita"])
    assert sorted(deploy for deploy, _, _ in runs.seen) == [7, 8]


async def test_a_failed_run_fails_its_callers_and_the_next_change_runs_again(runs, monkeypatch):
    real = watchers.update

    def broken(*args, **kwargs):
        raise ConnectionError("redis is away")

    monkeypatch.setattr(watchers, "update", broken)
    with pytest.raises(ConnectionError):
        await watching.change(7, "seen", "s1", "walt", announce=True)
    monkeypatch.setattr(watchers, "update", real)
    assert (await watching.change(7, "seen", "s1", "walt", announce=True))["frame"]["users"] == ["walt"]


async def test_only_a_join_or_leave_asks_to_broadcast_and_the_run_broadcasts_once(runs):
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add("deploy.7", listener)
    ping = await watching.change(7, "seen", "s1", "walt", announce=False)
    assert ping["broadcast"] is False
    joined = await watching.change(7, "seen", "s2", "rita", announce=True)
    assert joined["broadcast"] is True
    assert await asyncio.wait_for(layer.receive(listener), 5) == {"type": "deploy.watchers", "frame": joined["frame"]}
    assert [broadcast for _, _, broadcast in runs.seen] == [False, True]
    again = await watching.change(7, "gone", "s2", "rita", announce=True)  # within BROADCAST_EVERY_MS
    assert again["broadcast"] is False
    with pytest.raises(asyncio.TimeoutError):  # nothing more was broadcast
        await asyncio.wait_for(layer.receive(listener), 0.5)
    await layer.group_discard("deploy.7", listener)
