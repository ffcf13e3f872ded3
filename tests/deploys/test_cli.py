"""herald_cli against a live Herald (pytest-django's live server) and against dead/silent ones."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploys.models import ApiToken, Deploy, DeployEvent
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
APP_DIR = Path(__file__).resolve().parents[2] / "app"


def herald(*args, url, token="hrld_x_y", stdin="", check_code=None):
    env = {**os.environ, "HERALD_URL": url, "HERALD_TOKEN": token, "PYTHONPATH": str(APP_DIR)}
    proc = subprocess.run(
        [sys.executable, "-m", "herald_cli", "--timeout", "1", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return proc


def herald_run(script: str, *, url: str, token: str, version: str = "v1"):
    """`herald run` wrapping a bash script, reporting a staging deploy of service web."""
    argv = ["run", "--service", "web", "--env", "staging", "--version", version, "--", "bash", "-c", script]
    return herald(*argv, url=url, token=token)


@pytest.fixture
def token():
    return ApiToken.issue("cli-test", ["deploys:write", "deploys:read"])[1]


def test_start_log_progress_finish_against_a_live_server(live_server, token):
    url = live_server.url
    started = herald("start", "--service", "web", "--env", "production", "--version", "v9", url=url, token=token)
    assert started.returncode == 0, started.stderr
    deploy_id = int(started.stdout.strip())
    lines = "".join(f"line {i}\n" for i in range(1200))
    logged = herald("log", "--deploy", str(deploy_id), url=url, token=token, stdin=lines)
    assert logged.returncode == 0 and logged.stderr == ""
    assert herald("progress", "--deploy", str(deploy_id), "--percent", "70", url=url, token=token).returncode == 0
    assert herald("finish", "--deploy", str(deploy_id), "--status", "succeeded", url=url, token=token).returncode == 0
    deploy = Deploy.objects.get(pk=deploy_id)
    assert (deploy.status, deploy.runner) == ("succeeded", "external")
    stored = list(DeployEvent.objects.filter(deploy=deploy, kind="log").values_list("data__line", flat=True))
    assert stored == [f"line {i}" for i in range(1200)]


def test_run_wraps_a_command_and_reports_its_exit_status(live_server, token):
    script = "echo out; echo err >&2; exit 3"
    proc = herald_run(script, url=live_server.url, token=token)
    assert proc.returncode == 3
    assert proc.stdout == "out\n" and "err\n" in proc.stderr
    deploy = Deploy.objects.get(environment__slug="staging")
    assert deploy.status == "failed"
    assert sorted(DeployEvent.objects.filter(deploy=deploy, kind="log").values_list("data__line", "data__stream")) == [
        ("err", "stderr"),
        ("out", "stdout"),
    ]


def test_a_bad_token_warns_without_failing(live_server):
    proc = herald("start", "--service", "web", "--env", "prod", "--version", "v1", url=live_server.url)
    assert proc.returncode == 0 and "HTTP 401" in proc.stderr
    strict = herald("--strict", "start", "--service", "web", "--env", "prod", "--version", "v1", url=live_server.url)
    assert strict.returncode == 2


def test_a_dead_herald_never_fails_the_pipeline():
    dead = f"http://127.0.0.1:{free_port()}"
    proc = herald("start", "--service", "web", "--env", "prod", "--version", "v1", url=dead)
    assert (
        proc.returncode == 0
        and proc.stdout == ""
        and "cannot reach" in proc.stderr
        and "Connection refused" in proc.stderr
    )
    assert herald("--strict", "finish", "--deploy", "1", "--status", "failed", url=dead).returncode == 2
    logged = herald("log", "--deploy", "1", "--tee", url=dead, stdin="a\nb\n")
    assert logged.returncode == 0 and logged.stdout == "a\nb\n"  # stdin drained and passed through
    ran = herald(
        "run", "--service", "web", "--env", "prod", "--version", "v1", "--", "bash", "-c", "echo hi; exit 0", url=dead
    )
    assert ran.returncode == 0 and ran.stdout == "hi\n" and "running the command anyway" in ran.stderr


def test_a_silent_herald_costs_only_the_timeout():
    """A server that accepts connections but never answers: the CLI gives up and exits 0."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        url = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        proc = herald("start", "--service", "web", "--env", "prod", "--version", "v1", url=url)
    assert proc.returncode == 0 and "timed out" in proc.stderr


def test_progress_bar_redraws_are_stored_as_the_line_a_terminal_shows(live_server, token):
    url = live_server.url
    run = herald_run(
        r"printf 'get 10%%\rget 60%%\rget 100%%\n'; printf 'crlf line\r\n' >&2", url=url, token=token, version="v2"
    )
    assert run.returncode == 0, run.stderr
    started = herald("start", "--service", "web", "--env", "production", "--version", "v3", url=url, token=token)
    piped = herald("log", "--deploy", started.stdout.strip(), url=url, token=token, stdin="pull 1/3\rpull 3/3\nnext\n")
    assert piped.returncode == 0, piped.stderr

    def logged(environment):
        deploy = Deploy.objects.get(environment__slug=environment)
        return list(DeployEvent.objects.filter(deploy=deploy, kind="log").order_by("seq").values_list("data__line"))

    assert sorted(logged("staging")) == [("crlf line",), ("get 100%",)]
    assert logged("production") == [("pull 3/3",), ("next",)]
