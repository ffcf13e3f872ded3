"""Group messages for the sockets of one process: one channel-layer subscription per group, shared.

With a channel per socket, the pub/sub channel layer copies every group message into each member
socket's own asyncio.Queue; every socket's task then wakes up and unpacks its own msgpack copy.
A deploy watched by 1,000 sockets of a process paid that 1,000 times per batch, and each socket
carried the queue (four deques and an Event, ≈ 2.7 KB), a waiting task and a Redis subscription
of its own (docs/benchmarks.md). Here a process subscribes to a group once: one reader unpacks each
message once and offers the same dict to every local member, in the order the group sent them.

Members are consumers with `offer_now(message)` and `async offer(message)` (consumers/base.py): an
idle socket sends at once — the usual live batch without even a coroutine, when offer_now() can —
a busy one keeps the message for later, so one slow socket never holds up the others. A group may
have a `feed` that turns the messages that arrived into the messages to offer (deploy.py fills gaps
with it, once per process instead of once per socket).

One task receives the group's messages and another offers them: whatever arrived while the sockets
were being offered the last ones goes to the feed together, so a process that falls behind — a
reconnect storm on top of a busy deploy — hands its sockets fewer, larger frames instead of falling
further behind (deploy.py merges them).

A group also offers at most ROUNDS_PER_SECOND rounds a second on average, in bursts of up to
ROUND_BURST: a deploy that logs up to that many batches a second has each one offered alone, at once;
one that logs faster has what arrived in between offered together, one frame per socket per round.
Without it a process could not see that it fell behind: it writes a round's frames to nginx in a few
milliseconds and the backlog waits in the kernel's socket buffers and in nginx, where nothing merges
it. At 1,000 sockets × 100 batches a second the server core was then full and delivered 51–71 % of
what it was offered, 100–140 ms late at the median; with 10 rounds a second (and the batches put in
seq order, deploy.py) it delivers all of it, 80–90 ms late, on about half the CPU (docs/benchmarks.md,
8 December). A person reading a log does not need more than ten frames a second.

During a reconnect storm — at least STORM_CONNECTING sockets of this process in the middle of
connecting — the offering task also lets a group's messages gather for up to STORM_GATHER_SECONDS
before it offers them. Each socket that is back then gets one frame a second instead of one per batch,
and the server core goes to bringing the others back: with 10,000 sockets of a deploy taking 5
batches a second, the live frames alone needed more than the core (docs/benchmarks.md, 7 December).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels.layers import get_channel_layer

from .frames import RateLimit

log = logging.getLogger(__name__)

Feed = Callable[[list[dict]], Awaitable[list[dict]]]

ROUNDS_PER_SECOND = 10
ROUND_BURST = 3
STORM_CONNECTING = 50
STORM_GATHER_SECONDS = 1.0
_STORM_POLL_SECONDS = 0.05

connecting = 0  # sockets of this process between their accept and their first frames (consumers/base.py)


def in_storm() -> bool:
    return connecting >= STORM_CONNECTING


class LocalGroup:
    """The members of one group in this process, and the tasks that read the group for them."""

    def __init__(self, group: str, loop: asyncio.AbstractEventLoop, feed: Feed | None = None):
        self.group = group
        self.loop = loop
        self.feed = feed
        self.members: dict = {}  # insertion-ordered set: members hear messages in joining order
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.subscribed: asyncio.Future = loop.create_future()
        self.reader: asyncio.Task | None = None
        self.offerer: asyncio.Task | None = None
        self.arrived: list[dict] = []  # received, not offered yet, in the order the group sent them
        self.wake = asyncio.Event()
        self.pace = RateLimit(ROUNDS_PER_SECOND, ROUND_BURST)

    async def subscribe(self) -> None:
        """Join the channel layer's group (the first member's join waits for this)."""
        try:
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(self.group, self.channel)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self.subscribed.cancel()
            else:
                self.subscribed.set_exception(exc)
                self.subscribed.exception()  # the joiners re-raise it; no "never retrieved" warning
            raise
        self.reader = asyncio.ensure_future(self._read())
        self.offerer = asyncio.ensure_future(self._offer())
        self.subscribed.set_result(None)

    async def _read(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            self.arrived.append(message)  # after the await: _offer() swaps the list in the meantime
            self.wake.set()

    async def _offer(self) -> None:
        while True:
            await self.wake.wait()
            if in_storm():
                await self._gather()
            else:
                await self._keep_pace()
            self.wake.clear()
            messages, self.arrived = self.arrived, []
            for item in await self._fed(messages):
                for member in list(self.members):
                    try:
                        if not member.offer_now(item):
                            await member.offer(item)
                    except Exception:  # one broken socket must not starve the rest of the group
                        log.exception("socket %r failed to take a %s message", member, item.get("type"))

    async def _keep_pace(self) -> None:
        """Wait, if this round would come too soon after the last ones; what arrives meanwhile joins it."""
        delay = self.pace.take()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _gather(self) -> None:
        """Let more messages arrive while the storm lasts, for at most STORM_GATHER_SECONDS."""
        until = self.loop.time() + STORM_GATHER_SECONDS
        while in_storm() and self.loop.time() < until:
            await asyncio.sleep(_STORM_POLL_SECONDS)

    async def _fed(self, messages: list[dict]) -> list[dict]:
        if self.feed is None:
            return messages
        try:
            return await self.feed(messages)
        except Exception:  # the members still get the messages and repair what they miss themselves
            log.exception("the feed of %s failed on %d messages", self.group, len(messages))
            return messages

    async def close(self) -> None:
        """Called once the last member left: stop reading and leave the channel layer's group."""
        try:
            await asyncio.shield(self.subscribed)  # the last member may leave while the first joins
        except BaseException:
            return  # never subscribed: nothing to undo
        tasks = [t for t in (self.reader, self.offerer) if t is not None and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()  # the layer's receive() drops this channel when cancelled
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.channel is not None:
            await self.layer.group_discard(self.group, self.channel)


_groups: dict[str, LocalGroup] = {}


def local_group(group: str) -> LocalGroup | None:
    """This process's members of `group`, if it has any (tests and announce() ask)."""
    found = _groups.get(group)
    return found if found is not None and found.loop is asyncio.get_running_loop() else None


async def join(group: str, member, feed: Callable[[], Feed] | None = None) -> None:
    """Add `member` to `group`; returns once this process is subscribed to it, so every message the
    group sends from now on reaches the member (join-before-read, consumers/deploy.py). `feed` makes
    the group's feed when this is the process's first member of the group."""
    local = local_group(group)
    if local is None:
        local = _groups[group] = LocalGroup(group, asyncio.get_running_loop(), feed() if feed else None)
        local.members[member] = None
        try:
            await local.subscribe()
        except BaseException:
            if _groups.get(group) is local:
                del _groups[group]
            raise
        return
    local.members[member] = None
    await asyncio.shield(local.subscribed)


async def leave(group: str, member) -> None:
    """Remove `member`; the last one out closes the process's subscription. Safe to call twice."""
    local = local_group(group)
    if local is None or local.members.pop(member, False) is False:
        return
    if not local.members:
        del _groups[group]  # before any await: a join from here on starts a fresh subscription
        await local.close()
