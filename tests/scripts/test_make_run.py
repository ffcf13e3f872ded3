"""The README's first command and the runbook's secret rotation, run for real: `make run` into a
throwaway run directory on free ports, then `make rotate-secret`, then `make stop`.

Order matters (pytest runs a module top to bottom): one local run serves the whole module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.stack.wsclient import DeployFollower
from tests.support.aio import run_coroutine
from tests.support.servers import free_port
from tests.support.stack import ROOT, ThroughNginx, parse_env_file

pytestmark = pytest.mark.timeout(900)


class LocalRun(ThroughNginx):
    """A `make run` in its own HERALD_RUN_ROOT, driven only through make targets and nginx."""

    def __init__(self, root: Path):
        self.root = root
        self.http_port = free_port()
        self.env = {**os.environ, "HERALD_RUN_ROOT": str(root), "HERALD_HTTP_PORT": str(self.http_port)}
        # pytest-django's settings must not leak into make run's Django.
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.outputs: list[str] = []

    def make(self, *args: str, **env: str) -> str:
        proc = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = proc.stdout + proc.stderr
        self.outputs.append(output)
        assert proc.returncode == 0, f"make {' '.join(args)} exited {proc.returncode}:\n{output[-4000:]}"
        return output

    def local_vars(self) -> dict:
        return yaml.safe_load((self.root / "local-vars.yml").read_text())

    def herald_env(self) -> dict[str, str]:
        return parse_env_file(self.root / "etc/herald.env")

    def pids(self) -> dict[str, int]:
        """The daemons make run started, from their pid files (those still alive)."""
        found = {}
        for name, path in {
            "redis": "sock/redis.pid",
            "nginx": "sock/nginx.pid",
            "supervisord": "sock/supervisord.pid",
        }.items():
            pidfile = self.root / path
            if pidfile.exists():
                pid = int(pidfile.read_text().split()[0])
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                found[name] = pid
        return found

    def redis_auth(self, password: str) -> str:
        """What redis-server answers to AUTH with this password (password on stdin, not argv)."""
        proc = subprocess.run(
            ["redis-cli", "-p", str(self.local_vars()["herald_redis_port"])],
            input=f"AUTH {password}\nPING\n",
            capture_output=True,
            text=True,
            timeout=10,
        )
        return proc.stdout

    def follow(self, deploy_id: int, cookie: str, timeout: float = 120) -> list[dict]:
        """Every event of a deploy's socket, replay included, until its final status (the stack tests'
        browser-like follower)."""
        return run_coroutine(DeployFollower(self, cookie, deploy_id).run(timeout=timeout)).events


class Browser:
    """One browser's cookies against a local run: it takes every Set-Cookie, as a browser does (Django
    moves a session to a new key when it re-hashes it under a rotated secret)."""

    def __init__(self, run: LocalRun, username: str, password: str):
        self.run = run
        self.cookies = dict(part.split("=", 1) for part in run.login(username, password).split("; "))

    @property
    def cookie(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, dict, str]:
        headers = {"Origin": self.run.base_url}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, text = self.run.http(method, path, body=body, headers=headers, cookie=self.cookie)
        for value in response_headers["set-cookie-list"]:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return status, response_headers, text

    def logged_in(self) -> bool:
        status = self.request("GET", "/")[0]
        assert status in (200, 302), status  # 302: to the login page
        return status == 200

    def socket_refused(self) -> int | None:
        """None when daphne greets this session on the dashboard socket, else the close code."""
        with connect(
            self.run.ws_url("/ws/dashboard/"), additional_headers=self.run.ws_headers(self.cookie), open_timeout=15
        ) as ws:
            try:
                frame = json.loads(ws.recv(timeout=15))
                if frame["type"] == "hello":
                    return None
                assert frame["type"] == "error", frame  # the reason comes first, then the close
                ws.recv(timeout=15)
            except ConnectionClosed:
                return ws.close_code
            raise AssertionError(f"socket neither greeted nor closed: {frame}")


class RequestLoop:
    """Requests through nginx → uWSGI in a thread while something else happens; records failures."""

    def __init__(self, run: LocalRun, path: str, browser: Browser | None = None):
        self.run, self.path, self.browser = run, path, browser
        self.count, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.browser:
                    status, _, body = self.browser.request("GET", self.path)
                else:
                    status, _, body = self.run.http("GET", self.path, timeout=30)
                if status != 200:
                    self.failures.append(f"{status} {body[:200]}")
            except OSError as exc:
                self.failures.append(repr(exc))
            self.count += 1
            time.sleep(0.05)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    # A short path: unix socket names must stay under 108 bytes.
    root = Path(tmp_path_factory.mktemp("run", numbered=True))
    # Keep the SQLite file out of the checkout's var/ (a developer's own make run lives there).
    (root / "local-vars.yml").write_text(yaml.safe_dump({"herald_var_dir": str(root / "var")}))
    run = LocalRun(root)
    try:
        yield run
    finally:
        subprocess.run(
            ["make", "--no-print-directory", "stop"], cwd=ROOT, env=run.env, capture_output=True, timeout=900
        )


def test_make_run_prints_the_url_and_login_and_the_demo_deploy_is_live(local_run):
    output = local_run.make("run")
    url = re.search(r"Open:\s+(http://127\.0\.0\.1:(\d+)(/deploys/\d+/))", output)
    login = re.search(r"Log in:\s+admin / (\S+)", output)
    assert url and login, output[-3000:]
    assert int(url.group(2)) == local_run.http_port
    local_run.password = login.group(1)
    cookie = local_run.login("admin", local_run.password)
    status, _, page = local_run.http("GET", url.group(3), cookie=cookie)
    assert status == 200 and "demo" in page
    # The page's socket, as the browser opens it: replay from 0, then live to the end.
    deploy_id = int(url.group(3).split("/")[2])
    events = local_run.follow(deploy_id, cookie)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert sum(e["kind"] == "log" for e in events) >= 10
    assert events[-1]["data"]["status"] == "succeeded"


def test_a_second_make_run_is_safe_and_keeps_secrets_and_processes(local_run):
    before_pids, before_vars = local_run.pids(), local_run.local_vars()
    assert set(before_pids) == {"redis", "nginx", "supervisord"}
    output = local_run.make("run", HERALD_NO_DEMO="1")
    assert f"admin / {local_run.password}" in output
    assert local_run.pids() == before_pids
    assert local_run.local_vars() == before_vars
    assert local_run.http("GET", "/healthz")[0] == 200


def test_rotating_the_secret_key_logs_nobody_out_and_fails_no_request(local_run):
    active = Browser(local_run, "admin", local_run.password)  # keeps making requests throughout
    resting = Browser(local_run, "admin", local_run.password)  # idle during the first rotation only
    dormant = Browser(local_run, "admin", local_run.password)  # idle during both
    key = local_run.herald_env()["DJANGO_SECRET_KEY"]
    with RequestLoop(local_run, "/", browser=active) as loop:
        local_run.make("rotate-secret", "SECRET=secret-key")
    assert loop.count > 0 and loop.failures == [], loop.failures[:5]
    env = local_run.herald_env()
    assert env["DJANGO_SECRET_KEY"] != key and env["DJANGO_SECRET_KEY_FALLBACKS"] == key
    # A page's socket reconnecting to the restarted daphne is often a browser's first contact after
    # the rotation: the previous key still admits it, and the next page load re-hashes the session.
    assert resting.socket_refused() is None
    assert resting.logged_in()

    # The next rotation retires the first key. Sessions re-hashed since stay signed in; the one left
    # alone across both rotations ends, in uWSGI and in daphne alike, which shows every process took
    # up the rewritten herald.env without Herald being stopped.
    local_run.make("rotate-secret", "SECRET=secret-key")
    assert active.logged_in() and active.socket_refused() is None
    assert resting.logged_in()
    assert dormant.socket_refused() == 4401
    assert not dormant.logged_in()


def test_rotating_the_redis_password_refuses_the_old_one_and_deploys_still_flow(local_run):
    old = local_run.local_vars()["herald_redis_password"]
    browser = Browser(local_run, "admin", local_run.password)
    with RequestLoop(local_run, "/healthz") as loop:  # /healthz checks Redis from uWSGI
        local_run.make("rotate-secret", "SECRET=redis-password")
    assert loop.count > 0 and loop.failures == [], loop.failures[:5]
    new = local_run.local_vars()["herald_redis_password"]
    assert new != old and "herald_redis_password_previous" not in local_run.local_vars()
    assert "WRONGPASS" in local_run.redis_auth(old)
    assert "PONG" in local_run.redis_auth(new)
    assert f":{new}@" in local_run.herald_env()["REDIS_URL"]
    assert f"requirepass {new}" in (local_run.root / "etc/redis/redis.conf").read_text()

    # A deploy through every Redis user: the dashboard's form (uWSGI), the broker (Celery worker),
    # the channel layer (worker → daphne) and the socket.
    browser.request("GET", "/")
    form = f"service=demo&environment=staging&version=v-rotated&csrfmiddlewaretoken={browser.cookies['csrftoken']}"
    status, headers, body = browser.request("POST", "/deploys/start/", body=form)
    assert status == 302, (status, body[:500])
    deploy_id = re.search(r"/deploys/(\d+)/$", headers["location"]).group(1)
    events = local_run.follow(int(deploy_id), browser.cookie)
    assert events[-1]["data"]["status"] == "succeeded"


def test_make_stop_stops_everything_make_run_started(local_run):
    pids = local_run.pids()
    assert set(pids) == {"redis", "nginx", "supervisord"}
    local_run.make("stop")
    assert local_run.pids() == {}
    with pytest.raises(OSError):
        local_run.http("GET", "/healthz", timeout=5)
