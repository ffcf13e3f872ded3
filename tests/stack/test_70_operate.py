"""The runbook's everyday commands against the running stack: status, one component, scaling daphne."""

from __future__ import annotations

import json

from websockets.sync.client import connect


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
