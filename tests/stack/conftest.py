"""Fixtures for the stack tests (the stack itself comes from tests/conftest.py): a logged-in session, and a
WebSocket left idle from the start of the session so the idle test costs no extra minute."""

from __future__ import annotations

import contextlib
import time

import pytest
from websockets.sync.client import connect


@pytest.fixture(scope="session")
def session_cookie(herald_stack):
    return herald_stack.login()


class IdleSocket:
    """A log-follow socket that nobody writes to: nothing crosses nginx until the test pings it."""

    def __init__(self, stack, cookie):
        self.opened_at = time.monotonic()
        self.exit_stack = contextlib.ExitStack()
        self.ws = self.exit_stack.enter_context(connect(
            stack.ws_url("/ws/logs/"), additional_headers=stack.ws_headers(cookie), ping_interval=None,
            open_timeout=15))
        self.hello = self.ws.recv(timeout=15)


@pytest.fixture(scope="session", autouse=True)
def idle_socket(herald_stack, session_cookie):
    """Opened as soon as the stack is up; tests/stack/test_40_idle.py checks it is still open."""
    sock = IdleSocket(herald_stack, session_cookie)
    yield sock
    sock.exit_stack.close()
