"""deploys/consumers/fanout.py and the deploy feed's merge (consumers/deploy.py merged()): messages that
arrive while the group's offering task is busy are offered together, merged where they follow on."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from deploys.consumers import fanout
from deploys.consumers.deploy import PAGE, DeployFeed, merged
from deploys.consumers.frames import RateLimit


def batch(first: int, last: int, summary: dict | None = None, inline: bool = True) -> dict:
    events = [{"seq": seq, "kind": "log", "data": {"line": str(seq)}} for seq in range(first, last + 1)]
    return {
        "type": "deploy.events",
        "first": first,
        "last": last,
        "events": events if inline else None,
        "summary": summary,
    }


def test_batches_that_follow_on_are_merged_into_one():
    [one] = merged([batch(3, 3), batch(4, 5), batch(6, 6, summary={"last_seq": 6})])
    assert (one["first"], one["last"], one["summary"]) == (3, 6, {"last_seq": 6})
    assert [e["seq"] for e in one["events"]] == [3, 4, 5, 6]


def test_a_summary_a_gap_a_seq_range_or_another_message_ends_a_run():
    watchers = {"type": "deploy.watchers", "frame": {"type": "watchers", "count": 1, "users": ["rita"]}}
    messages = [
        batch(1, 1, summary={"last_seq": 1}),
        batch(2, 2),  # the summary must follow seq 1, not 2
        batch(3, 3),
        watchers,
        batch(4, 4),  # the watcher list keeps its place
        batch(6, 6),  # seq 5 is missing: the feed fills it
        batch(7, 9, inline=False),
        batch(10, 10),  # a seq range is read from the database
    ]
    out = merged(messages)
    assert [(m["type"], m.get("first"), m.get("last")) for m in out] == [
        ("deploy.events", 1, 1),
        ("deploy.events", 2, 3),
        ("deploy.watchers", None, None),
        ("deploy.events", 4, 4),
        ("deploy.events", 6, 6),
        ("deploy.events", 7, 9),
        ("deploy.events", 10, 10),
    ]
    assert messages[1] == batch(2, 2)  # the messages themselves are left as they were


def test_batches_published_out_of_order_are_merged_in_seq_order():
    watchers = {"type": "deploy.watchers", "frame": {"type": "watchers", "count": 1, "users": ["rita"]}}
    out = merged([batch(4, 5), batch(1, 3), watchers, batch(8, 8), batch(6, 7)])
    assert [(m["type"], m.get("first"), m.get("last")) for m in out] == [
        ("deploy.events", 1, 5),
        ("deploy.watchers", None, None),  # keeps its place: batches are never moved across it
        ("deploy.events", 6, 8),
    ]
    assert [e["seq"] for e in out[0]["events"]] == [1, 2, 3, 4, 5]


def test_a_merged_batch_holds_at_most_a_page():
    out = merged([batch(1, PAGE - 1), batch(PAGE, PAGE), batch(PAGE + 1, PAGE + 1)])
    assert [(m["first"], m["last"]) for m in out] == [(1, PAGE), (PAGE + 1, PAGE + 1)]


class Member:
    """A group member that records what it is offered; it is busy (offer() waits) until `free` is set."""

    def __init__(self):
        self.offered: list[dict] = []
        self.free = asyncio.Event()

    def offer_now(self, message: dict) -> bool:
        return False

    async def offer(self, message: dict) -> None:
        self.offered.append(message)
        await self.free.wait()


@pytest.mark.django_db(transaction=True)
async def test_messages_that_arrive_while_the_members_are_offered_one_are_offered_together():
    group, member = "deploy.991", Member()
    await fanout.join(group, member, feed=lambda: DeployFeed(991))
    layer = get_channel_layer()
    await layer.group_send(group, batch(1, 1))
    while not member.offered:  # the offering task is now stuck in this member's offer()
        await asyncio.sleep(0.01)
    for message in (batch(2, 2), batch(3, 4), batch(5, 5)):
        await layer.group_send(group, message)
    local = fanout.local_group(group)
    while len(local.arrived) < 3:  # received meanwhile, not offered yet
        await asyncio.sleep(0.01)
    member.free.set()
    while len(member.offered) < 2:
        await asyncio.sleep(0.01)
    assert [(m["first"], m["last"]) for m in member.offered] == [(1, 1), (2, 5)]
    assert [e["seq"] for e in member.offered[1]["events"]] == [2, 3, 4, 5]
    await fanout.leave(group, member)
    assert fanout.local_group(group) is None


class Recorder:
    """A group member that records what it is offered, always free."""

    def __init__(self):
        self.offered: list[dict] = []

    def offer_now(self, message: dict) -> bool:
        self.offered.append(message)
        return True

    async def offer(self, message: dict) -> None:  # pragma: no cover - offer_now() takes everything
        self.offered.append(message)


async def wait_for(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.django_db(transaction=True)
async def test_during_a_storm_messages_gather_and_go_out_together_once_it_ends(monkeypatch):
    monkeypatch.setattr(fanout, "STORM_GATHER_SECONDS", 60)  # only the storm's end can release them
    group, member = "deploy.992", Recorder()
    await fanout.join(group, member, feed=lambda: DeployFeed(992))
    layer = get_channel_layer()
    monkeypatch.setattr(fanout, "connecting", fanout.STORM_CONNECTING)  # that many sockets connecting
    for message in (batch(1, 1), batch(2, 3), batch(4, 4)):
        await layer.group_send(group, message)
        await asyncio.sleep(0.1)
    await wait_for(lambda: len(fanout.local_group(group).arrived) == 3)
    assert member.offered == []  # gathered, not offered
    monkeypatch.setattr(fanout, "connecting", fanout.STORM_CONNECTING - 1)  # the storm is over
    await wait_for(lambda: member.offered)
    assert [(m["first"], m["last"]) for m in member.offered] == [(1, 4)]
    await layer.group_send(group, batch(5, 5))  # no storm: offered alone, at once
    await wait_for(lambda: len(member.offered) == 2)
    assert (member.offered[1]["first"], member.offered[1]["last"]) == (5, 5)
    await fanout.leave(group, member)


@pytest.mark.django_db(transaction=True)
async def test_a_storm_holds_messages_for_at_most_the_gathering_window(monkeypatch):
    monkeypatch.setattr(fanout, "STORM_GATHER_SECONDS", 0.3)
    monkeypatch.setattr(fanout, "connecting", fanout.STORM_CONNECTING)  # and it never ends
    group, member = "deploy.993", Recorder()
    await fanout.join(group, member, feed=lambda: DeployFeed(993))
    await get_channel_layer().group_send(group, batch(1, 1))
    await wait_for(lambda: member.offered)
    assert [(m["first"], m["last"]) for m in member.offered] == [(1, 1)]
    await fanout.leave(group, member)


@pytest.mark.django_db(transaction=True)
async def test_a_group_that_hears_faster_than_its_pace_offers_what_arrived_meanwhile_together(monkeypatch):
    monkeypatch.setattr(fanout, "ROUNDS_PER_SECOND", 2)
    monkeypatch.setattr(fanout, "ROUND_BURST", 1)
    group, member = "deploy.994", Recorder()
    await fanout.join(group, member, feed=lambda: DeployFeed(994))
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    await layer.group_send(group, batch(1, 1))
    await wait_for(lambda: member.offered)
    first_round = loop.time()
    for message in (batch(2, 2), batch(3, 4), batch(5, 5)):
        await layer.group_send(group, message)
    await wait_for(lambda: len(member.offered) == 2)
    assert loop.time() - first_round >= 0.4  # the next round waited for its turn (2 a second)…
    assert [(m["first"], m["last"]) for m in member.offered] == [(1, 1), (2, 5)]  # …and took all three
    await fanout.leave(group, member)


@pytest.mark.django_db(transaction=True)
async def test_a_group_within_its_pace_offers_every_message_alone_without_waiting(monkeypatch):
    waits = []
    take = RateLimit.take
    monkeypatch.setattr(RateLimit, "take", lambda self: waits.append(take(self)) or waits[-1])
    group, member = "deploy.995", Recorder()
    await fanout.join(group, member, feed=lambda: DeployFeed(995))
    layer = get_channel_layer()
    sent = fanout.ROUND_BURST + 2  # more than a burst, each after a round's turn has come again
    for seq in range(1, sent + 1):
        await layer.group_send(group, batch(seq, seq))
        await wait_for(lambda seq=seq: len(member.offered) == seq)
        await asyncio.sleep(1.5 / fanout.ROUNDS_PER_SECOND)
    assert waits == [0.0] * sent
    assert [(m["first"], m["last"]) for m in member.offered] == [(s, s) for s in range(1, sent + 1)]
    await fanout.leave(group, member)
