"""Run one step's command as a subprocess in its own process group, line by line.

Knows nothing of Django or Celery: the caller passes callbacks for output lines and a `tick`
that is called at least every POLL_SECONDS and returns True when the step must stop (cancel).
Stopping escalates SIGINT → SIGTERM → SIGKILL to the whole group, with a grace period between,
so a step that ignores SIGINT (or spawned children) still ends.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

POLL_SECONDS = 0.05
ESCALATION = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
MAX_LINE_BYTES = 16_384


@dataclass
class StepResult:
    returncode: int | None
    duration_ms: int
    cancelled: bool = False
    timed_out: bool = False
    error: str = ""  # the command could not start at all

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not (self.cancelled or self.timed_out or self.error)


def run_step(
    argv: list[str],
    *,
    on_line: Callable[[str, str, float], None],
    tick: Callable[[], bool],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    grace: float = 3.0,
) -> StepResult:
    """Run argv; call on_line(stream, text, unix_time) per output line; stop on tick() or timeout."""
    started = time.monotonic()
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # own session → own process group
        )
    except OSError as exc:
        return StepResult(None, 0, error=f"cannot start {argv[0]!r}: {exc.strerror or exc}")

    selector = selectors.DefaultSelector()
    buffers = {"stdout": b"", "stderr": b""}
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ, name)

    stop_reason = None
    signals_left = list(ESCALATION)
    next_signal_at = 0.0
    leader_gone_at = None
    open_pipes = 2
    while open_pipes or proc.poll() is None:
        for key, _ in selector.select(POLL_SECONDS):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                selector.unregister(key.fileobj)
                open_pipes -= 1
                _emit(buffers, key.data, b"", on_line, final=True)
                continue
            _emit(buffers, key.data, chunk, on_line)
        now = time.monotonic()
        if stop_reason is None:
            if tick():
                stop_reason = "cancelled"
            elif now - started > timeout:
                stop_reason = "timed_out"
        # Signal the whole group, not only the leader: a leader that died on SIGINT can leave children
        # (still holding our pipes) that only a later signal ends.
        if stop_reason and signals_left and now >= next_signal_at:
            _signal_group(proc.pid, signals_left.pop(0))
            next_signal_at = now + grace
        if not open_pipes and proc.poll() is None and not stop_reason:
            time.sleep(POLL_SECONDS)  # pipes closed (daemonised child) but the process lives on
        if proc.poll() is not None and open_pipes:
            leader_gone_at = leader_gone_at or now
            if stop_reason is None and now - leader_gone_at > grace:
                break  # the step ended but left a background process holding its output: stop reading
            if stop_reason and not signals_left and now >= next_signal_at:
                break  # even SIGKILL of the group left a holder (it changed groups): give up on it
    proc.wait()
    selector.close()
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()
    return StepResult(
        proc.returncode,
        int((time.monotonic() - started) * 1000),
        cancelled=stop_reason == "cancelled",
        timed_out=stop_reason == "timed_out",
    )


def _emit(buffers: dict, stream: str, chunk: bytes, on_line, final: bool = False) -> None:
    data = buffers[stream] + chunk
    *lines, rest = data.split(b"\n")
    if len(rest) > MAX_LINE_BYTES:  # a line with no end in sight: cut it so memory stays bounded
        lines.append(rest)
        rest = b""
    if final and rest:
        lines.append(rest)
        rest = b""
    buffers[stream] = rest
    now = time.time()
    for line in lines:
        # A progress bar redraws its line after each "\r"; keep what a terminal ends up showing.
        text = line.decode("utf-8", errors="replace").rstrip("\r").rpartition("\r")[2]
        on_line(stream, text, now)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
