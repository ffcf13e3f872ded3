"""Client frames on Herald's sockets: parsing, validation and per-connection rate limiting.

Every failure is a FrameError whose code and message go back to the client as an `error` frame;
the socket stays open (docs/protocol.md lists the codes).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

MAX_FRAME_BYTES = 16 * 1024

# Close codes: a JSON `error` frame with the same meaning is sent just before the close.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_RESUME_BEYOND_END = 4416


class FrameError(Exception):
    def __init__(self, code: str, message: str, frame_id=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id

    def as_frame(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message, "id": self.frame_id}


@dataclass(frozen=True)
class Field:
    name: str
    kind: type
    max_length: int | None = None


def parse(text: str | None, actions: dict[str, tuple[Field, ...]]) -> tuple[str, dict, object]:
    """Parse one text frame into (action, fields, id) or raise FrameError.

    `actions` maps each allowed action to its required fields.
    """
    if text is None:
        raise FrameError("bad_json", "binary frames are not accepted; send JSON text")
    if len(text.encode()) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"a frame may hold at most {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise FrameError("bad_json", f"the frame is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(frame, dict):
        raise FrameError("not_an_object", 'a frame must be a JSON object such as {"action": "ping"}')
    frame_id = frame.get("id")
    if not isinstance(frame_id, (str, int, type(None))) or isinstance(frame_id, bool):
        frame_id = None
    action = frame.get("action")
    if action is None:
        raise FrameError("missing_field", "'action' is required", frame_id)
    if action not in actions:
        raise FrameError(
            "unknown_action", f"unknown action {action!r}; expected one of {', '.join(sorted(actions))}", frame_id
        )
    fields = {}
    for spec in actions[action]:
        value = frame.get(spec.name)
        if value is None:
            raise FrameError("missing_field", f"'{spec.name}' is required for {action}", frame_id)
        if not isinstance(value, spec.kind) or (isinstance(value, bool) and spec.kind is not bool):
            raise FrameError("invalid_field", f"'{spec.name}' must be a {spec.kind.__name__}", frame_id)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise FrameError("field_too_long", f"'{spec.name}' is longer than {spec.max_length} characters", frame_id)
        fields[spec.name] = value
    return action, fields, frame_id


class RateLimit:
    """Token bucket: `rate` actions a second on average, bursts up to `burst`. A socket's client actions
    are refused beyond it (allow()); a group's rounds of offers wait for it (take(), consumers/fanout.py)."""

    def __init__(self, rate: float = 5.0, burst: int = 20):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def allow(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def take(self) -> float:
        """Take a token even if none is left, and return how many seconds the caller must wait before
        acting on it (0.0: at once). The debt is repaid by the refill, so a caller that waits as told
        acts `rate` times a second at most, on average."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
