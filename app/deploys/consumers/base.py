"""What every Herald socket shares: JSON frames, the login check, refusing with a defined code."""

from __future__ import annotations

import asyncio
import functools
import json

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from herald.ws_auth import socket_user

from .frames import CLOSE_UNAUTHENTICATED, FrameError, RateLimit, parse


async def pump_into(dispatch, *sources) -> None:
    """Feed every message from `sources` (awaitable callables) to `dispatch`, one at a time, until a
    dispatch or a source raises; then stop the other sources and re-raise.

    Why not channels' await_many_dispatch: it runs `asyncio.wait` over fresh tasks for every message,
    and every live batch is a message on every subscribed socket. One long-lived loop per source and
    a lock that keeps dispatches from overlapping do the same job for 12 instead of 30-36 µs of CPU
    per delivered message (1,000 sockets × 50 messages, /tmp A/B in docs/benchmarks.md). A loop asks
    its source for the next message only after dispatching the last, as channels' does.
    """
    one_at_a_time = asyncio.Lock()

    async def pump(source):
        while True:
            message = await source()
            async with one_at_a_time:
                await dispatch(message)

    tasks = [asyncio.ensure_future(pump(source)) for source in sources]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # pumps only end by raising: StopConsumer from a handler, or an error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class HeraldConsumer(AsyncWebsocketConsumer):
    """Base consumer: subclasses define ACTIONS and `on_<action>` handlers and override `start()`."""

    ACTIONS: dict = {}

    async def __call__(self, scope, receive, send):
        """channels' AsyncConsumer.__call__ for an async consumer with a channel layer (Herald's all
        are), with pump_into() in place of channels' per-message task juggling."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        try:
            await pump_into(self.dispatch, receive, self.channel_receive)
        except StopConsumer:
            pass

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

    async def connect(self):
        """Called when a WebSocket opens: accept, look up the user, refuse anonymous users with 4401,
        else start(). Accepting comes first so that a crowd of reconnecting sockets cannot outwait
        daphne's handshake timeout in the queue for the database (herald/ws_auth.py)."""
        await self.accept()
        self.limiter = RateLimit()
        user = await socket_user(self.scope)
        if not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED, "unauthenticated", "log in first; this socket needs a session")
            return
        await self.start()

    async def start(self):
        """Called once the user is known to be logged in."""

    async def refuse(self, code: int, error: str, message: str):
        """Send an error frame, then close with `code` (the client sees both)."""
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
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
