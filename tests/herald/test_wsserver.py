"""herald.wsserver, the daphne supervisor runs: it freezes the start-up heap before it listens, and, told to
stop, the whole heap before it cancels anything; its WebSocket protocols read their options from the factory."""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct

import pytest

from .conftest import python_in_app, running_wsserver


@pytest.fixture
def wsserver(tmp_path):
    with running_wsserver(tmp_path / "daphne.sock", "herald.asgi:application") as proc:
        yield proc


def test_sigterm_freezes_the_heap_before_daphne_cancels_the_applications(wsserver):
    proc = wsserver
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    lines = output.splitlines()
    frozen = [i for i, line in enumerate(lines) if "shutting down: the heap is kept out of garbage collection" in line]
    killed = [i for i, line in enumerate(lines) if "pending application instances" in line]
    assert frozen and killed and frozen[0] < killed[0], output  # daphne logs how many it cancelled


def _open_socket(sock_path) -> socket.socket:
    """A WebSocket handshake on daphne's unix socket, answered with 101; returns the connection."""
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(30)
    conn.connect(str(sock_path))
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 101"), reply
    return conn


def test_a_stop_leaves_open_sockets_to_the_kernel_and_closes_the_listener(tmp_path):
    """Told to stop, daphne cancels every application and exits without Twisted's per-connection
    teardown: each client sees its connection end all the same. The listener is closed as before —
    its socket file and lock removed, so a reload's probe never mistakes the file for a listening
    daphne — and the next daphne binds the same path."""
    sock_path = tmp_path / "daphne.sock"
    app = "tests.herald.prepared_frames_app:application"
    with running_wsserver(sock_path, app) as proc:
        clients = [_open_socket(sock_path) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, output
        # All three applications cancelled (daphne's own step raised KeyError on a connection that had
        # none yet, and cancelled nothing after it), then the three sockets left to the kernel.
        assert "Killed 3 pending application instances" in output, output
        assert "shutting down: 3 connections left for the kernel to close" in output, output
        for conn in clients:
            while conn.recv(4096):  # whatever was on its way, then the end of the stream
                pass
            conn.close()
    assert not sock_path.exists() and not (tmp_path / "daphne.sock.lock").exists()
    with running_wsserver(sock_path, app) as proc:
        _open_socket(sock_path).close()
        assert proc.poll() is None


def test_the_start_up_heap_is_frozen_before_daphne_listens(wsserver):
    proc = wsserver
    proc.send_signal(signal.SIGTERM)
    lines = proc.communicate(timeout=60)[0].splitlines()
    frozen = [i for i, line in enumerate(lines) if "starting: " in line and "kept out of garbage collection" in line]
    listening = [i for i, line in enumerate(lines) if "Configuring endpoint" in line]
    assert frozen and listening and frozen[0] < listening[0], lines
    assert int(lines[frozen[0]].split("starting: ")[1].split()[0]) > 10_000  # Django, Twisted, autobahn


def test_protocols_read_the_options_daphne_set_on_their_factory():
    """FactoryOptionsProtocol copies none of autobahn's options onto the connection and still reads
    each one as the factory has it."""
    printed = python_in_app(
        "import herald.wsserver as w\n"
        "from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol\n"
        "server = w.HeraldServer.__new__(w.HeraldServer)\n"
        "server.ws_factory = WebSocketFactory(server, server='Daphne')\n"
        "server.ws_factory.setProtocolOptions(openHandshakeTimeout=7, maxMessagePayloadSize=1234)\n"
        "proto = server.ws_factory.buildProtocol(None)\n"
        "print(type(proto).__name__, proto.openHandshakeTimeout, proto.maxMessagePayloadSize)\n"
        "print(all(getattr(proto, n) == getattr(server.ws_factory, n) for n in WebSocketProtocol.CONFIG_ATTRS))\n"
        "print(len(set(WebSocketProtocol.CONFIG_ATTRS) & set(vars(proto))), hasattr(proto, 'no_such_option'))\n"
    )
    assert printed == ["FactoryOptionsProtocol", "7", "1234", "True", "0", "False"]


def test_a_frame_over_daphnes_limit_still_drops_the_connection(tmp_path):
    """The options reach real connections: daphne's 1 MiB frame limit, set on the factory, holds — a
    header announcing 1 MiB + 1 is enough for autobahn to drop the connection (its failByDrop), where
    without the limit it would wait for the payload. (Herald's own limit, 16 KiB, answers with an
    error frame: docs/protocol.md.)"""
    sock_path = tmp_path / "daphne.sock"
    with running_wsserver(sock_path, "tests.herald.prepared_frames_app:application"):
        with _open_socket(sock_path) as conn:
            # FIN + text; masked, 64-bit length; then the mask key.
            conn.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 1024 * 1024 + 1) + os.urandom(4))
            assert conn.recv(4096) == b""  # closed at once; a socket.timeout here means it waited
