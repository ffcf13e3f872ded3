"""The deploy socket: replay from a resume position, then live events, with no gap and no duplicate."""

from __future__ import annotations

import collections
import json
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from .. import operations, watchers
from ..events import EventError, NewEvent, events_after, record
from ..models import Deploy
from ..publisher import deploy_group
from ..summary import deploy_summary
from .base import HeraldConsumer
from .frames import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND, CLOSE_RESUME_BEYOND_END, Field, FrameError

PAGE = 1000
# Join/leave broadcasts go only to deploys this process holds at most this many sockets of (announce()).
BROADCAST_WATCHERS_UP_TO = 50
# Open deploy sockets in this process, per deploy (the watchers frame counts users, not sockets).
_sockets: collections.Counter = collections.Counter()


# Live frames this process encoded lately, by (deploy, first seq, last seq, last event's ts, kind). Every
# subscriber of a deploy on this process gets the same batch, and stored events never change, so the
# frame is encoded once per process instead of once per socket (json.dumps per subscriber was ≈ 5 % of
# fan-out). The ts keeps a reused deploy id (a reset database, tests) from ever matching an old frame.
_FRAMES: dict[tuple, str] = {}
_FRAMES_KEPT = 256


def _encoded(key: tuple, frame: dict) -> str:
    text = _FRAMES.get(key)
    if text is None:
        text = _FRAMES[key] = json.dumps(frame, separators=(",", ":"))
        if len(_FRAMES) > _FRAMES_KEPT:
            del _FRAMES[next(iter(_FRAMES))]  # the oldest (dicts keep insertion order)
    return text


@database_sync_to_async
def _open(deploy_id: int, after: int) -> tuple[dict | None, list[dict]]:
    """The summary for `hello` and the first replay page, in one trip to the database thread.

    Why one trip: daphne runs every `database_sync_to_async` call of a process on one thread, so a
    burst of connects queues there; each trip also pays channels' connection clean-up twice.
    """
    # order_by() and a slice, not first(): ordering one row by pk (or Deploy's default ordering) only
    # costs Django compile time, ≈ 0.3 ms of daphne CPU per connect (with summary.py's step ordering,
    # 2.25 → 1.69 ms per summary; docs/benchmarks.md).
    found = list(Deploy.objects.select_related("service", "environment").filter(pk=deploy_id).order_by()[:1])
    if not found:
        return None, []
    deploy = found[0]
    summary = deploy_summary(deploy)
    if after >= summary["last_seq"]:
        return summary, []
    return summary, [row.as_wire() for row in events_after(deploy_id, after, PAGE)]


@database_sync_to_async
def _events_after(deploy_id: int, after: int, until: int | None) -> list[dict]:
    return [row.as_wire() for row in events_after(deploy_id, after, PAGE, until)]


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

    async def start(self):
        self.deploy_id = int(self.scope["url_route"]["kwargs"]["deploy_id"])
        raw_after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[-1]
        if not raw_after.isdigit():
            await self.refuse(CLOSE_BAD_REQUEST, "bad_request", "'after' must be a whole number ≥ 0")
            return
        after = int(raw_after)
        # Join before reading anything: every event stored from here on is in the replay read below or
        # in a live message queued behind this handler.
        group = deploy_group(self.deploy_id)
        await self.channel_layer.group_add(group, self.channel_name)
        summary, page = await _open(self.deploy_id, after)
        if summary is None or after > summary["last_seq"]:
            await self.channel_layer.group_discard(group, self.channel_name)
            if summary is None:
                await self.refuse(CLOSE_NOT_FOUND, "not_found", f"deploy {self.deploy_id} does not exist")
            else:
                await self.refuse(
                    CLOSE_RESUME_BEYOND_END,
                    "resume_beyond_end",
                    f"after={after} but deploy {self.deploy_id} has only {summary['last_seq']} events",
                )
            return
        self.last_sent = after
        self.group = group
        _sockets[self.deploy_id] += 1
        await self.send_json({"type": "hello", "deploy": summary, "after": after})
        if page:
            await self.send_json({"type": "events", "events": page})
            self.last_sent = page[-1]["seq"]
        if len(page) == PAGE:
            await self.catch_up()
        await self.send_json({"type": "live", "last_seq": self.last_sent})
        await self.announce(await self._watch(watchers.seen))

    async def disconnect(self, code):
        """Called when the socket closes: leave the group and the watcher list."""
        if self.group:
            _sockets[self.deploy_id] -= 1
            if _sockets[self.deploy_id] <= 0:
                del _sockets[self.deploy_id]
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.announce(await self._watch(watchers.gone), include_self=False)

    async def _watch(self, change) -> dict:
        # thread_sensitive=False: these are Redis round trips (thread-safe client), so they need not
        # queue behind the database calls on daphne's one thread-sensitive executor thread.
        return await sync_to_async(change, thread_sensitive=False)(
            self.deploy_id, self.channel_name, self.scope["user"].get_username()
        )

    async def announce(self, frame: dict, include_self: bool = True) -> None:
        """Tell the group who is watching (rate-limited per deploy); this socket hears it either way.

        Only small audiences hear every join and leave: a broadcast costs one frame per socket, so with
        N sockets joining (a ramp, a reconnect storm) it cost N/2 frames a second, more daphne CPU than
        the joins themselves (docs/benchmarks.md). Where this process alone holds more than
        BROADCAST_WATCHERS_UP_TO sockets of the deploy, the others learn the list at their next pong,
        which always carries it (docs/protocol.md promises "at most every 2 s").
        """
        if _sockets[self.deploy_id] <= BROADCAST_WATCHERS_UP_TO and await sync_to_async(
            watchers.may_broadcast, thread_sensitive=False
        )(self.deploy_id):
            await self.channel_layer.group_send(self.group, {"type": "deploy.watchers", "frame": frame})
        elif include_self:
            await self.send_json(frame)

    async def deploy_watchers(self, message):
        """Someone joined or left (from announce())."""
        await self.send_json(message["frame"])

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
        if self.group is None:  # refused while this message was queued
            return
        first, last, inline = message["first"], message["last"], message.get("events")
        key = (self.deploy_id, first, last, inline[-1]["ts"] if inline else None)
        if last > self.last_sent:
            if inline is not None and first == self.last_sent + 1:  # the usual case: the whole batch is new
                frame = {"type": "events", "events": inline}
                await self.send(text_data=_encoded((*key, "events"), frame))
                self.last_sent = last
            elif inline is not None and first <= self.last_sent:  # overlaps the replay: drop what was sent
                fresh = [e for e in inline if e["seq"] > self.last_sent]
                await self.send_json({"type": "events", "events": fresh})
                self.last_sent = fresh[-1]["seq"]
            else:  # a gap (a message was lost) or a batch too big to inline: read the database
                await self.catch_up(until=last)
        if message.get("summary"):
            frame = {"type": "summary", "deploy": message["summary"]}
            if inline:
                await self.send(text_data=_encoded((*key, "summary"), frame))
            else:  # a seq range has no ts for the key: encode it here
                await self.send_json(frame)

    async def on_ping(self, frame_id):
        # Re-join (cheap, idempotent): after a Redis restart the group membership is gone.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.catch_up()
        await self.send_json({"type": "pong", "id": frame_id, "last_seq": self.last_sent})
        await self.send_json(await self._watch(watchers.seen))

    async def on_comment(self, frame_id, text):
        user = self.scope["user"]
        try:
            recorded = await database_sync_to_async(record)(
                self.deploy_id, [NewEvent("comment", {"user": user.get_username(), "text": text})]
            )
        except EventError as exc:
            raise FrameError("invalid_field" if exc.status == 400 else "conflict", exc.message, frame_id) from None
        await self.send_json({"type": "ack", "id": frame_id, "action": "comment", "seq": recorded.last_seq})

    async def on_cancel(self, frame_id):
        user = self.scope["user"]
        allowed = await database_sync_to_async(user.has_perm)("deploys.start_deploy")
        if not allowed:
            raise FrameError("forbidden", "only release engineers (permission 'start_deploy') may cancel", frame_id)
        try:
            await database_sync_to_async(operations.request_cancel)(self.deploy_id, user.get_username())
        except EventError as exc:
            raise FrameError("conflict", exc.message, frame_id) from None
        await self.send_json({"type": "ack", "id": frame_id, "action": "cancel"})
