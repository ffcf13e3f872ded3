"""The deploy socket: replay from a resume position, then live events, with no gap and no duplicate."""

from __future__ import annotations

import uuid
from itertools import groupby
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from .. import operations
from ..events import EventError, NewEvent, record
from ..publisher import deploy_group
from . import watching
from .base import HeraldConsumer
from .frames import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_RESUME_BEYOND_END, Field, FrameError
from .replay import replay_cache
from .summaries import summary_reads

PAGE = 1000


def _open(deploy_id: int, after: int, joined_at: float) -> tuple[dict | None, list[dict]]:
    """The summary for `hello` and the first replay page (on the database thread, in the same trip as
    the user lookup: consumers/base.py), both read after the socket joined at `joined_at`."""
    summary = summary_reads.since(deploy_id, joined_at)
    if summary is None:
        return None, []
    last_seq = summary["last_seq"]
    replay_cache.forget_beyond(deploy_id, last_seq)
    if after >= last_seq:
        return summary, []
    # Up to last_seq, all stored: what was stored since arrives in the live messages held for us.
    return summary, replay_cache.events_after(deploy_id, after, PAGE, until=last_seq)


@database_sync_to_async
def _events_after(deploy_id: int, after: int, until: int | None) -> list[dict]:
    return replay_cache.events_after(deploy_id, after, PAGE, until)


class DeployFeed:
    """One deploy's batches as this process's sockets should get them: a batch that leaves a gap behind
    the last one (a message lost while a daphne was cut off from Redis; two producers whose publishes
    crossed) is preceded by the missing events, and a batch too big to travel inline arrives in pages —
    each read from the database once per process, not once per socket. Without it every socket read
    the same rows on daphne's one database thread: a lost message cost a process with 5,000 sockets
    of the deploy 5,000 reads. Nothing is ever dropped here; each socket still drops what it has sent
    and repairs on its own what the feed could not (its own catch_up).

    Batches that arrived together because the process fell behind are merged first (merged()), so
    each socket gets one frame for them instead of one per batch."""

    def __init__(self, deploy_id: int):
        self.deploy_id = deploy_id
        self.last: int | None = None  # the highest seq offered so far (known from the first batch on)

    async def __call__(self, messages: list[dict]) -> list[dict]:
        out = []
        for message in merged(messages):
            out += await self._fill(message)
        return out

    async def _fill(self, message: dict) -> list[dict]:
        if message["type"] != "deploy.events":
            return [message]
        first, last = message["first"], message["last"]
        start = first if self.last is None else self.last + 1  # the first seq not offered yet
        # A seq range needs all of it; an inline batch only what lies between the last one and it.
        until = last if message.get("events") is None else first - 1
        fed = await self._pages(start, until) if until >= start else []
        self.last = max(self.last or 0, last)
        # The message itself always follows: sockets drop the events they already have from the pages
        # and still get its summary, and a socket the pages did not cover repairs the rest itself.
        return [*fed, message]

    async def _pages(self, start: int, until: int) -> list[dict]:
        """Stored events start..until as inline batches of at most PAGE (fewer if some are not stored)."""
        pages, after = [], start - 1
        while after < until:
            page = await _events_after(self.deploy_id, after, until)
            if not page:
                break
            pages.append({"type": "deploy.events", "first": page[0]["seq"], "last": page[-1]["seq"], "events": page})
            after = page[-1]["seq"]
        return pages


def merged(messages: list[dict]) -> list[dict]:
    """`messages` with each run of inline batches that follow on from one another joined into one batch
    of at most PAGE events. A batch with a summary ends a run (its summary must still follow its own
    events, not later ones); anything else — a watcher list, a seq range, a gap — is passed on as it is,
    in its place. Nothing is dropped: the sockets see the same events, in seq order.

    Each run of batches between two other messages is put in seq order first. Two ingest requests of
    one deploy that commit one after the other may publish the other way round; left so, the later
    batch looked like a gap (a database read, an extra frame to every socket) and the earlier one then
    carried nothing new. At 100 requests a second, several at a time, rounds then cost each socket 2.5
    frames instead of one (docs/benchmarks.md, 8 December)."""
    out: list[dict] = []
    for message in _in_seq_order(messages):
        before = out[-1] if out else None
        if (
            before is not None
            and before["type"] == message["type"] == "deploy.events"
            and before.get("events") is not None
            and message.get("events") is not None
            and not before.get("summary")
            and message["first"] == before["last"] + 1
            and len(before["events"]) + len(message["events"]) <= PAGE
        ):
            out[-1] = {
                "type": "deploy.events",
                "first": before["first"],
                "last": message["last"],
                "events": before["events"] + message["events"],
                "summary": message.get("summary"),
            }
        else:
            out.append(message)
    return out


def _in_seq_order(messages: list[dict]) -> list[dict]:
    """`messages` with each run of deploy.events batches sorted by first seq, the rest in their places."""
    out: list[dict] = []
    for batches, group in groupby(messages, key=lambda m: m["type"] == "deploy.events"):
        run = list(group)
        out += sorted(run, key=lambda m: m["first"]) if batches else run
    return out


def _may_cancel(user_id: int) -> bool:
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user is not None and user.has_perm("deploys.start_deploy")


class DeployConsumer(HeraldConsumer):
    """`/ws/deploys/<id>/?after=<seq>`: everything after `after`, then live (docs/protocol.md).

    The socket joins the deploy's group *before* it reads the replay from the database, so an event
    stored during the replay is either in the replay or in a queued live message; `last_sent` drops
    whatever was already sent and fills from the database any gap a lost message left.
    """

    ACTIONS = {
        "comment": (Field("text", str, max_length=2000),),
        "cancel": (),
        "ping": (),
    }

    group: str | None = None  # set once the socket is live; disconnect() and live messages need it
    after: int | None = None  # the resume position asked for; None when it was not a whole number

    async def prepare(self):
        self.deploy_id = int(self.scope["url_route"]["kwargs"]["deploy_id"])
        self.socket_id = uuid.uuid4().hex  # this socket in the watcher list, unique across hosts
        raw_after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[-1]
        if raw_after.isdigit():
            self.after = int(raw_after)
            # Join before reading anything: every event stored from here on is in the replay read in
            # load() or in a live message held for this socket until start() has sent the replay.
            await self.join(deploy_group(self.deploy_id), feed=lambda: DeployFeed(self.deploy_id))
            self.joined_at = summary_reads.clock()  # a summary read after this may be shared (summaries.py)

    def load(self):
        return None if self.after is None else _open(self.deploy_id, self.after, self.joined_at)

    async def start(self, loaded):
        if self.after is None:
            await self.refuse(CLOSE_BAD_REQUEST, "bad_request", "'after' must be a whole number ≥ 0")
            return
        after = self.after
        summary, page = loaded
        if summary is None:
            await self.refuse(CLOSE_NOT_FOUND, "not_found", f"deploy {self.deploy_id} does not exist")
            return
        if after > summary["last_seq"]:
            await self.refuse(
                CLOSE_RESUME_BEYOND_END,
                "resume_beyond_end",
                f"after={after} but deploy {self.deploy_id} has only {summary['last_seq']} events",
            )
            return
        self.last_sent = after
        self.group = deploy_group(self.deploy_id)
        await self.send_json({"type": "hello", "deploy": summary, "after": after})
        if page:
            await self.send_json({"type": "events", "events": page})
            self.last_sent = page[-1]["seq"]
        if len(page) == PAGE:
            await self.catch_up()
        await self.send_json({"type": "live", "last_seq": self.last_sent})
        await self.announce(await self._watch("seen", announce=True))

    async def disconnect(self, code):
        """Called when the socket closes: leave the watcher list (base.py leaves the group)."""
        if self.group:
            await self.leave_groups()
            await self._watch("gone", announce=True)

    async def _watch(self, op: str, announce: bool) -> dict:
        """This socket seen or gone, in the next run of its deploy's watcher changes (watching.py)."""
        return await watching.change(self.deploy_id, op, self.socket_id, self.username, announce)

    async def announce(self, result: dict) -> None:
        """Tell this socket who is watching: the deploy's group heard it already if the run broadcast it
        (rate-limited per deploy, and only for small audiences: watching.py)."""
        if not result["broadcast"]:
            await self.send_shared(result, "watchers", result["frame"])

    def quick(self, message: dict) -> bool:
        """Live messages that need no database read: the next batch in order, or a watcher list."""
        if self.group is None:  # refused or closed (a socket still connecting holds its messages)
            return True  # the handlers drop them
        if message["type"] == "deploy.watchers":
            return True
        if message["type"] != "deploy.events":
            return False
        if message["last"] <= self.last_sent:  # all sent already (the feed's pages came first): summary only
            return True
        return message.get("events") is not None and message["first"] <= self.last_sent + 1

    def deliver_now(self, message: dict) -> bool:
        """deploy_events() and deploy_watchers() for the usual live message, without awaiting (prepared
        frames only, consumers/base.py): a watcher list, or a batch that is either all new and right
        after what this socket sent or all sent already — with its summary. Anything that needs the
        database or a frame of this socket's own goes to the handlers."""
        if self.group is None:
            return True  # refused or closed: the handlers drop it too
        kind = message["type"]
        if kind == "deploy.watchers":
            self.send_shared_now(message, "watchers", message["frame"])
            return True
        if kind != "deploy.events":
            return False
        if message["last"] > self.last_sent:
            if message.get("events") is None or message["first"] != self.last_sent + 1:
                return False
            self.send_shared_now(message, "events", {"type": "events", "events": message["events"]})
            self.last_sent = message["last"]
        if message.get("summary"):
            self.send_shared_now(message, "summary", {"type": "summary", "deploy": message["summary"]})
        return True

    async def deploy_watchers(self, message):
        """Someone joined or left (from announce())."""
        if self.group is None:
            return
        await self.send_shared(message, "watchers", message["frame"])

    async def catch_up(self, until: int | None = None) -> None:
        """Send every stored event after last_sent (up to `until`), in pages."""
        while True:
            page = await _events_after(self.deploy_id, self.last_sent, until)
            if not page:
                return
            await self.send_json({"type": "events", "events": page})
            self.last_sent = page[-1]["seq"]
            if len(page) < PAGE:
                return

    async def deploy_events(self, message):
        """A batch was stored (from publisher.publish_batch): send what this socket has not seen."""
        if self.group is None:  # refused while this message was held
            return
        first, last, inline = message["first"], message["last"], message.get("events")
        if last > self.last_sent:
            if inline is not None and first == self.last_sent + 1:  # the usual case: the whole batch is new
                await self.send_shared(message, "events", {"type": "events", "events": inline})
                self.last_sent = last
            elif inline is not None and first <= self.last_sent:  # overlaps the replay: drop what was sent
                fresh = [e for e in inline if e["seq"] > self.last_sent]
                await self.send_json({"type": "events", "events": fresh})
                self.last_sent = fresh[-1]["seq"]
            else:  # a gap (a message was lost) or a batch too big to inline: read the database
                await self.catch_up(until=last)
        if message.get("summary"):
            await self.send_shared(message, "summary", {"type": "summary", "deploy": message["summary"]})

    async def on_ping(self, frame_id):
        # A message lost while Redis was away (the layer re-subscribes by itself) is filled from here.
        await self.catch_up()
        await self.send_json({"type": "pong", "id": frame_id, "last_seq": self.last_sent})
        result = await self._watch("seen", announce=False)
        await self.send_shared(result, "watchers", result["frame"])

    async def on_comment(self, frame_id, text):
        try:
            recorded = await database_sync_to_async(record)(
                self.deploy_id, [NewEvent("comment", {"user": self.username, "text": text})]
            )
        except EventError as exc:
            raise FrameError("invalid_field" if exc.status == 400 else "conflict", exc.message, frame_id) from None
        await self.send_json({"type": "ack", "id": frame_id, "action": "comment", "seq": recorded.last_seq})

    async def on_cancel(self, frame_id):
        if not await database_sync_to_async(_may_cancel)(self.user_id):
            raise FrameError("forbidden", "only release engineers (permission 'start_deploy') may cancel", frame_id)
        try:
            await database_sync_to_async(operations.request_cancel)(self.deploy_id, self.username)
        except EventError as exc:
            raise FrameError("conflict", exc.message, frame_id) from None
        await self.send_json({"type": "ack", "id": frame_id, "action": "cancel"})
