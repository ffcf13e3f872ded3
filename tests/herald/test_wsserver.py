"""herald.wsserver, the daphne supervisor runs: told to stop, it freezes the heap before it cancels anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wsserver(tmp_path):
    """python -m herald.wsserver on a unix socket of its own, as supervisor starts it (without the fd)."""
    sock = tmp_path / "daphne.sock"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'app'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "herald.wsserver", "-u", str(sock), "herald.asgi:application"],
        cwd=ROOT / "app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "daphne did not listen within 60 s"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_freezes_the_heap_before_daphne_cancels_the_applications(wsserver):
    proc = wsserver
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    lines = output.splitlines()
    frozen = [i for i, line in enumerate(lines) if "kept out of garbage collection" in line]
    killed = [i for i, line in enumerate(lines) if "pending application instances" in line]
    assert frozen, output
    assert int(lines[frozen[0]].split("shutting down: ")[1].split()[0]) > 10_000  # Django's modules at least
    assert killed and frozen[0] < killed[0], output  # daphne logs how many it cancelled
