"""The runbook's everyday commands against the running stack: status, one component, scaling daphne."""

from __future__ import annotations

import json
import os
import time

from websockets.sync.client import connect

from tests.support.stack import ROOT


def test_status_reports_every_program_running_and_healthz(herald_stack):
    result = herald_stack.script("status")
    out = result.stdout
    for name in ("uwsgi", "daphne:daphne-0", "daphne:daphne-1", "worker", "beat", "fatal-watch"):
        assert any(line.startswith(name) and "RUNNING" in line for line in out.splitlines()), (name, out)
    assert '"status": "ok"' in out and "worker 1: pid" in out


def test_status_fails_while_a_component_is_stopped(herald_stack):
    stack = herald_stack
    stack.ctl("stop", "beat")
    try:
        result = stack.script("status", check=False)
        assert result.returncode != 0 and "STOPPED" in result.stdout, result.stdout
    finally:
        stack.ctl("start", "beat")
    assert stack.programs()["beat"][0] == "RUNNING"


def test_logs_follows_one_programs_log(herald_stack):
    """`make logs PROGRAM=worker` is tail -F: it never ends by itself, so stop it after a moment."""
    stack = herald_stack
    result = stack.run(["timeout", "3", "bash", str(ROOT / "scripts/logs.sh"), "worker"], cwd=ROOT, check=False,
                       env={**os.environ, "HERALD_RUN_ROOT": str(stack.root)})
    assert result.returncode == 124, result.stderr  # killed by timeout while following
    assert "celery" in result.stdout.lower(), result.stdout[-500:]


def test_clearing_a_log_frees_its_space_and_logging_continues(herald_stack):
    """The disk-full procedure: `scripts/ctl.sh clear <program>` empties the file supervisor writes."""
    stack = herald_stack
    log = stack.log / "beat.log"
    assert log.stat().st_size > 0
    stack.ctl("clear", "beat")
    assert log.stat().st_size < 200  # beat may already have written its next line
    deadline = time.monotonic() + 20
    while log.stat().st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # housekeeping is scheduled every second in the stack
    assert log.stat().st_size > 0, "beat stopped logging after the clear"


def test_scale_daphne_to_three_processes(herald_stack, session_cookie):
    stack = herald_stack
    stack.script("scale-daphne", "3")
    programs = stack.wait_programs_running(60)
    assert {name for name in programs if name.startswith("daphne:")} == {
        "daphne:daphne-0", "daphne:daphne-1", "daphne:daphne-2"}
    assert (stack.etc / "nginx/herald-site.conf").read_text().count("daphne-") == 3
    stack.daphne_processes = 3
    stack.wait_daphnes(120)
    with connect(stack.ws_url("/ws/dashboard/"), additional_headers=stack.ws_headers(session_cookie),
                 open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
