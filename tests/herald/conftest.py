"""Running Herald's entry points in processes of their own, for the tests here: herald.wsserver (the daphne
supervisor runs), and short scripts that import the app as a fresh interpreter would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_wsserver(sock: Path, application: str):
    """python -m herald.wsserver serving `application` on the unix socket `sock`, as supervisor starts
    it (without the fd); yields the process once it listens, and kills it on the way out if still running."""
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
        while not sock.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "daphne did not listen within 60 s"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def python_in_app(code: str, **env: str) -> list[str]:
    """Run `code` in a fresh interpreter from app/ (as uWSGI and daphne import it), with `env` added to this
    environment; returns its standard output split into words. A failing script fails the test."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "app", env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
