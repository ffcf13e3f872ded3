"""herald.prepared_frames under the daphne Herald runs (python -m herald.wsserver): prepared frames
arrive whole and in order with plain ASGI sends, also when the socket's buffer is full, and a closed
socket drops them quietly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from websockets.sync.client import unix_connect

from .conftest import running_wsserver


@pytest.fixture
def server(tmp_path):
    """herald.wsserver serving tests/herald/prepared_frames_app.py."""
    sock = tmp_path / "daphne.sock"
    with running_wsserver(sock, "tests.herald.prepared_frames_app:application") as proc:
        yield sock, proc


def _connect(sock: Path):
    return unix_connect(str(sock), "ws://localhost/", max_size=None, compression=None, open_timeout=30)


def test_the_extension_is_offered_to_websocket_applications(server):
    with _connect(server[0]) as ws:
        ws.send(json.dumps({"action": "hello"}))
        assert json.loads(ws.recv(timeout=30)) == {"extension": True}


@pytest.mark.parametrize(
    "count, size",
    [
        (300, 100),  # small frames: each goes straight to the socket
        (60, 200_000),  # frames over Twisted's 128 KiB send limit and far over the socket's buffer
    ],
)
def test_frames_arrive_whole_and_in_order_while_the_reader_lags(server, count, size):
    with _connect(server[0]) as ws:
        ws.send(json.dumps({"action": "burst", "count": count, "size": size}))
        time.sleep(1)  # the server writes everything while nobody reads: the buffers fill
        received = [json.loads(ws.recv(timeout=30)) for _ in range(count)]
    assert [r["i"] for r in received] == list(range(count))
    assert all(r["pad"] == "x" * size for r in received)


def test_a_frame_sent_after_the_close_is_dropped(server):
    sock, proc = server
    with _connect(sock) as ws:
        ws.send(json.dumps({"action": "close-then-send"}))
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=30)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4000
    proc.terminate()
    output = proc.communicate(timeout=30)[0]
    assert "a prepared frame sent after the close returned quietly" in output, output
    assert "Traceback" not in output, output
