"""Running Herald's entry points in processes of their own, for the tests here: herald.wsserver (the daphne
supervisor runs), and short scripts that import the app as a fresh interpreter would."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_wsserver(sock: Path, application: str, fresh_socket: bool = True):
    """python -m herald.wsserver serving `application` on the unix socket `sock`, as supervisor starts
    it (without the fd); yields the process once it listens, and kills it on the way out if still running.
    With fresh_socket=False, `sock` may be a stale file left by an earlier daphne: listening is then
    proven by a connect that succeeds."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'app'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "herald.wsserver", "-u", str(sock), application],
        cwd=ROOT / "app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (sock.exists() if fresh_socket else _accepts(sock)):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "daphne did not listen within 60 s"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _accepts(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


def python_in_app(code: str, **env: str) -> list[str]:
    """Run `code` in a fresh interpreter from app/ (as uWSGI and daphne import it), with `env` added to this
    environment; returns its standard output split into words. A failing script fails the test."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "app", env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
