"""deploys/runner/process.py on real subprocesses: lines, exit codes, timeouts, cancel escalation."""

import os
import signal
import sys
import textwrap
import time

import pytest

from deploys.runner.process import run_step


@pytest.fixture(autouse=True)
def steps_inherit_default_sigint():
    """Steps here start from pytest, as they start from the Celery worker in production, whose own
    SIGINT handler means a step execs with SIGINT at its default. A suite launched in the background
    of a non-interactive shell inherits SIGINT *ignored* instead, and so would every `sleep` below —
    which would test the shell, not the escalation. A handled signal is reset at exec, so install one."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


IGNORES_SIGINT = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, lambda *a: print("ignoring SIGINT", flush=True))
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
""")

IGNORES_INT_AND_TERM = IGNORES_SIGINT.replace(
    'print("ready"', 'signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))\nprint("ready"'
)


def _collect():
    lines = []
    return lines, lambda stream, text, t: lines.append((stream, text))


def test_lines_from_both_streams_and_the_exit_status():
    lines, on_line = _collect()
    code = "import sys; print('out 1'); print('err 1', file=sys.stderr); sys.stdout.write('no newline'); sys.exit(3)"
    result = run_step([sys.executable, "-c", code], on_line=on_line, tick=lambda: False, timeout=10)
    assert result.returncode == 3 and not result.succeeded
    assert sorted(lines) == [("stderr", "err 1"), ("stdout", "no newline"), ("stdout", "out 1")]


def test_a_redrawn_progress_line_keeps_its_last_state():
    lines, on_line = _collect()
    code = "import sys; sys.stdout.write('fetch 10%\\rfetch 60%\\rfetch 100%\\r\\nwindows line\\r\\n')"
    run_step([sys.executable, "-c", code], on_line=on_line, tick=lambda: False, timeout=10)
    assert lines == [("stdout", "fetch 100%"), ("stdout", "windows line")]


def test_a_missing_command_is_reported_not_raised():
    result = run_step(["/nonexistent/deploy.sh"], on_line=lambda *a: None, tick=lambda: False, timeout=5)
    assert result.error.startswith("cannot start '/nonexistent/deploy.sh'") and not result.succeeded


def _cancel_after_ready(lines):
    return lambda: any(text == "ready" for _, text in lines)


def test_cancel_escalates_from_sigint_to_sigterm_for_a_step_that_ignores_sigint():
    lines, on_line = _collect()
    started = time.monotonic()
    result = run_step(
        [sys.executable, "-c", IGNORES_SIGINT], on_line=on_line, tick=_cancel_after_ready(lines), timeout=60, grace=0.5
    )
    assert result.cancelled and result.returncode == -signal.SIGTERM
    assert ("stdout", "ignoring SIGINT") in lines
    print(f"cancel via SIGTERM took {time.monotonic() - started:.2f}s")


def test_cancel_ends_with_sigkill_when_sigint_and_sigterm_are_ignored():
    lines, on_line = _collect()
    result = run_step(
        [sys.executable, "-c", IGNORES_INT_AND_TERM],
        on_line=on_line,
        tick=_cancel_after_ready(lines),
        timeout=60,
        grace=0.5,
    )
    assert result.cancelled and result.returncode == -signal.SIGKILL
    assert [t for _, t in lines if t.startswith("ignoring")] == ["ignoring SIGINT", "ignoring SIGTERM"]


def test_the_whole_process_group_is_stopped(tmp_path):
    """A step's children die with it: the signals go to its process group."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo ready; wait"
    lines, on_line = _collect()
    result = run_step(["bash", "-c", script], on_line=on_line, tick=_cancel_after_ready(lines), timeout=60, grace=0.5)
    assert result.cancelled
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"child {child} of the cancelled step is still alive")


def test_a_step_over_its_timeout_is_stopped():
    # A long grace: on a loaded CI machine `sleep` once took over 0.5 s to die of SIGINT, and the
    # SIGTERM that followed made the test fail although the timeout had worked. Escalation has its own
    # tests above; a prompt death still ends this one at once.
    result = run_step(["sleep", "30"], on_line=lambda *a: None, tick=lambda: False, timeout=0.3, grace=10)
    assert result.timed_out and result.returncode == -signal.SIGINT


def test_a_finished_step_is_not_held_open_by_a_background_child(tmp_path):
    """The step's own process exits but leaves a child writing to our pipe: the step still ends."""
    pidfile = tmp_path / "child.pid"
    script = f"(sleep 30; echo late) & echo $! > {pidfile}; echo done"
    lines, on_line = _collect()
    result = run_step(["bash", "-c", script], on_line=on_line, tick=lambda: False, timeout=60, grace=0.3)
    assert result.returncode == 0 and result.succeeded and lines == [("stdout", "done")]
    os.killpg(os.getpgid(int(pidfile.read_text())), signal.SIGKILL)  # clean up our own leftover
