"""A WebSocket with no traffic for longer than nginx's default 60 s proxy_read_timeout stays open.

The socket was opened when the stack came up (conftest.idle_socket) and daphne's pings are slowed to
120 s in the stack, so only nginx's own timeout decides; the earlier tests ran in the meantime."""

from __future__ import annotations

import json
import time

IDLE_SECONDS = 65


def test_websocket_idle_longer_than_60s_stays_open(idle_socket):
    waited = time.monotonic() - idle_socket.opened_at
    if waited < IDLE_SECONDS:
        time.sleep(IDLE_SECONDS - waited)
    print(f"socket idle for {time.monotonic() - idle_socket.opened_at:.0f} s")
    idle_socket.ws.send(json.dumps({"action": "ping"}))
    frame = json.loads(idle_socket.ws.recv(timeout=10))
    assert frame["type"] == "pong", frame
