"""What every Herald socket shares: JSON frames, one database trip to learn who it is, refusing with a
defined code, and taking messages from its groups (consumers/fanout.py) in order."""

from __future__ import annotations

import asyncio
import logging

import orjson
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from herald.prepared_frames import EXTENSION as PREPARED_FRAMES
from herald.ws_auth import session_key

from . import fanout, trips
from .frames import CLOSE_UNAUTHENTICATED, FrameError, RateLimit, parse

log = logging.getLogger(__name__)

CLOSE_INTERNAL_ERROR = 1011


class HeraldConsumer(AsyncWebsocketConsumer):
    """Base consumer. Subclasses define ACTIONS with `on_<action>` handlers, and may override:

    - `prepare()` (async): what must happen before the database is read, e.g. joining a group;
    - `load()` (sync, on the database thread): what the socket shows first, read in the same trip
      as the user — only for a signed-in user;
    - `start(loaded)` (async): send the first frames;
    - `quick(message)`: True for group messages whose handler only sends (no database, no waiting),
      which an idle socket then handles in the group reader's task, without waking one of its own.
    """

    ACTIONS: dict = {}
    # Log-follow lines are sent to one socket, so that consumer needs a channel-layer channel of its
    # own; the others hear only groups and skip the channel (and its Redis subscription) altogether.
    OWN_CHANNEL = False

    user_id: int | None = None
    username: str = ""
    closing = False  # refused or broken: group messages are dropped from here on
    turn_task: asyncio.Task | None = None  # the last task started to take this socket's turn

    async def __call__(self, scope, receive, send):
        """channels' AsyncConsumer.__call__, but messages from groups arrive through offer() instead of
        a channel, a queue and a waiting task per socket; client messages come from `receive`."""
        self.scope = scope
        self.base_send = send
        # {"prepare", "send"} under Herald's daphne (herald/prepared_frames.py); None elsewhere.
        self.prepared_frames = scope.get("extensions", {}).get(PREPARED_FRAMES)
        self.turn = asyncio.Lock()  # one handler at a time, whoever calls it
        self.held: list[dict] = []  # group messages offered while a handler ran, in arrival order
        self.joined: list[str] = []
        own_reader = None
        if self.OWN_CHANNEL:
            self.channel_layer = get_channel_layer(self.channel_layer_alias)
            self.channel_name = await self.channel_layer.new_channel()
            own_reader = asyncio.ensure_future(self._read_own_channel())
        try:
            while True:
                message = await receive()
                async with self.turn:
                    await self.dispatch(message)
                    await self._run_held()
        except StopConsumer:
            pass
        finally:
            if own_reader is not None:
                own_reader.cancel()
            await self.leave_groups()

    async def dispatch(self, message):
        """Call the message's handler — without channels' per-message `aclose_old_connections()`.

        Why: channels ≥ 4.2 hops to the database thread before *every* message a consumer handles,
        so each live batch cost one thread round trip per subscriber: ≈ 13 % of daphne's CPU in
        fan-out plus ≈ 10 % in the hop itself (py-spy, docs/benchmarks.md). Herald's consumers touch
        the database only through `database_sync_to_async`, which closes stale connections itself
        before and after each call, so the per-message hop cleans up nothing.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # ------------------------------------------------------------------ group messages
    async def join(self, group: str, feed=None) -> None:
        """Hear `group` from now on; returns once every later message of the group will arrive."""
        self.joined.append(group)
        await fanout.join(group, self, feed)

    async def leave_groups(self) -> None:
        while self.joined:
            await fanout.leave(self.joined.pop(), self)

    async def offer(self, message: dict) -> None:
        """A message from a group of this socket, or from its own channel. An idle socket handles a
        quick() one here and now; anything else waits for the socket's turn, behind earlier ones."""
        if self.closing:
            return
        if self.turn.locked() or self.held or not self.quick(message):
            self.held.append(message)
            if len(self.held) == 1 and not self.turn.locked():
                # No handler is running to pick it up; the reference keeps the task alive.
                self.turn_task = asyncio.ensure_future(self._take_turn())
            return
        try:
            async with self.turn:  # free, so taken without waiting
                await self.dispatch(message)
        except Exception:
            self._broken()

    def offer_now(self, message: dict) -> bool:
        """offer() without a coroutine, for the group reader (consumers/fanout.py): an idle socket under
        Herald's daphne handles the usual live message here, synchronously; False sends the reader
        to offer(). With nothing awaited between the checks and the sends, no other handler of the
        socket can run in between, as if the turn were taken — without taking it."""
        if self.closing:
            return True  # dropped, as offer() drops it
        if self.prepared_frames is None or self.turn.locked() or self.held:
            return False
        try:
            return self.deliver_now(message)
        except Exception:
            self._broken()
            return True

    def deliver_now(self, message: dict) -> bool:
        """Handle `message` without awaiting anything (send_shared_now() only) and return True, or leave
        it untouched and return False. Nothing is handled so by default."""
        return False

    def quick(self, message: dict) -> bool:
        return False

    async def _take_turn(self) -> None:
        try:
            async with self.turn:
                await self._run_held()
        except Exception:
            self._broken()

    async def _run_held(self) -> None:
        while self.held:
            await self.dispatch(self.held.pop(0))

    def _broken(self) -> None:
        """A group message could not be handled: this socket may have missed events, so close it;
        the client reconnects and resumes by seq, losing nothing (docs/protocol.md). The closing runs
        in a task of its own: this may be the group's offering task, which leaving the group cancels."""
        log.exception("closing a %s socket that failed to handle a group message", type(self).__name__)
        self.closing = True
        self.held.clear()
        self.turn_task = asyncio.ensure_future(self._close_broken())

    async def _close_broken(self) -> None:
        await self.leave_groups()
        await self.close(code=CLOSE_INTERNAL_ERROR)

    async def _read_own_channel(self) -> None:
        while True:
            await self.offer(await self.channel_layer.receive(self.channel_name))

    # ------------------------------------------------------------------ the socket's life
    async def connect(self):
        """Called when a WebSocket opens: accept, prepare(), then one trip to the database for the user
        and load(); refuse anonymous users with 4401, else start().

        Accepting comes first so that a crowd of reconnecting sockets cannot outwait daphne's
        handshake timeout in the queue for the database; one trip, because daphne runs every
        database call of a process on one thread and each trip queues there (herald/ws_auth.py) —
        and the trips of sockets that connect together share a hop to that thread (trips.py).
        """
        fanout.connecting += 1  # a crowd of these is a reconnect storm (fanout.in_storm())
        try:
            await self.accept()
            self.limiter = RateLimit()
            await self.prepare()
            user, loaded = await trips.run(session_key(self.scope), self.load)
            if user is None:
                await self.refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", "log in first; this socket needs a session")
                return
            self.user_id, self.username = user
            await self.start(loaded)
        finally:
            fanout.connecting -= 1

    async def prepare(self):
        """Called before the user is looked up (and before load() reads anything)."""

    def load(self):
        """Called on the database thread once the user is known to be signed in; start() gets the result."""

    async def start(self, loaded):
        """Called once the user is known to be logged in, with what load() returned."""

    async def websocket_disconnect(self, message):
        """The socket closed: disconnect(), leave every group, stop."""
        await self.disconnect(message["code"])
        await self.leave_groups()
        raise StopConsumer()

    async def refuse(self, code: int, error: str, message: str):
        """Send an error frame, then close with `code` (the client sees both, and nothing after them)."""
        self.closing = True
        self.held.clear()
        await self.leave_groups()
        await self.send_json({"type": "error", "code": error, "message": message, "id": None})
        await self.close(code=code)

    async def receive(self, text_data=None, bytes_data=None):
        """Called for each client frame: validate it, rate-limit it, dispatch to on_<action>."""
        try:
            action, fields, frame_id = parse(text_data, self.ACTIONS)
            if not self.limiter.allow():
                raise FrameError("rate_limited", "too many actions; slow down", frame_id)
            await getattr(self, f"on_{action}")(frame_id, **fields)
        except FrameError as exc:
            await self.send_json(exc.as_frame())

    async def send_json(self, content: dict):
        """Send a frame of this socket's own. Under Herald's daphne it is framed by the prepared-frames
        extension and written straight to the socket like the shared ones: daphne's ASGI send chain
        for a connect's own frames (hello, replay, live, watchers) was a tenth of its CPU per connect
        (docs/benchmarks.md, 7 December). Elsewhere it goes through ASGI; the frames are the same."""
        payload = orjson.dumps(content)
        if self.prepared_frames is not None:
            self.prepared_frames["send"](self.prepared_frames["prepare"](payload))
            return
        await self.send(text_data=payload.decode())

    async def send_shared(self, message: dict, name: str, frame: dict) -> None:
        """Send `frame`, which every socket of this process offered `message` sends too (consumers/
        fanout.py): encoded once per message and kept in the shared message dict under `name` — and,
        under Herald's daphne, framed once as well and written straight to the socket. The ASGI path
        is the fallback, and the frames are the same."""
        if self.prepared_frames is not None:
            self.send_shared_now(message, name, frame)
            return
        key = f"_{name}_text"
        text = message.get(key)
        if text is None:
            text = message[key] = orjson.dumps(frame).decode()
        await self.send(text_data=text)

    def send_shared_now(self, message: dict, name: str, frame: dict) -> None:
        """send_shared() through the prepared frames, which need no await (deliver_now())."""
        key = f"_{name}_prepared"
        wire = message.get(key)
        if wire is None:
            wire = message[key] = self.prepared_frames["prepare"](orjson.dumps(frame))
        self.prepared_frames["send"](wire)
