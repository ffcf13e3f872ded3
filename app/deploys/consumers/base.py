"""What every Herald socket shares: JSON frames, the login check, refusing with a defined code."""

from __future__ import annotations

import json

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from .frames import CLOSE_UNAUTHENTICATED, FrameError, RateLimit, parse


class HeraldConsumer(AsyncWebsocketConsumer):
    """Base consumer: subclasses define ACTIONS and `on_<action>` handlers and override `start()`."""

    ACTIONS: dict = {}

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
        """Called when a WebSocket opens: refuse anonymous users with 4401, else start()."""
        await self.accept()
        self.limiter = RateLimit()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
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
