"""herald.wsserver, the daphne supervisor runs: it freezes the start-up heap before it listens, and, told to
stop, the whole heap before it cancels anything."""

from __future__ import annotations

import signal

import pytest

from .conftest import running_wsserver


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
    frozen = [i for i, line in enumerate(lines) if "shutting down: " in line and "kept out of garbage" in line]
    killed = [i for i, line in enumerate(lines) if "pending application instances" in line]
    assert frozen, output
    assert int(lines[frozen[0]].split("shutting down: ")[1].split()[0]) > 10_000  # Django's modules at least
    assert killed and frozen[0] < killed[0], output  # daphne logs how many it cancelled


def test_the_start_up_heap_is_frozen_before_daphne_listens(wsserver):
    proc = wsserver
    proc.send_signal(signal.SIGTERM)
    lines = proc.communicate(timeout=60)[0].splitlines()
    frozen = [i for i, line in enumerate(lines) if "starting: " in line and "kept out of garbage collection" in line]
    listening = [i for i, line in enumerate(lines) if "Configuring endpoint" in line]
    assert frozen and listening and frozen[0] < listening[0], lines
    assert int(lines[frozen[0]].split("starting: ")[1].split()[0]) > 10_000  # Django, Twisted, autobahn
