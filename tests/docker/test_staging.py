"""docker-compose.prod.yml end to end: everything through nginx on 127.0.0.1, as a tester's browser would.

Order matters (pytest runs a module top to bottom): the stack comes up once, the deploy test restarts
the app container, and the last test takes the stack down and checks nothing is left.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import ssl
import subprocess
import urllib.parse
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.aio import run_coroutine

from .conftest import IMAGE_TAG

# Cold builds (debootstrap, uWSGI's compile) on a shared 2-core machine are slow; the layer cache makes
# later runs quick. This is a safety net for a hung build, not a speed assertion.
pytestmark = pytest.mark.timeout(1800)

FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def tls_context() -> ssl.SSLContext:
    """The staging certificate is self-signed (made by the nginx container on first start)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Browser:
    """Cookies, CSRF and same-origin headers the way a browser sends them, over urllib."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls_context()), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def get(self, path: str):
        return self.opener.open(urllib.request.Request(self.base_url + path), timeout=30)

    def post_form(self, path: str, fields: dict):
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method="POST",
            headers={"Origin": self.base_url, "Referer": self.base_url + path,
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        return self.opener.open(request, timeout=30)

    def login(self, username: str, password: str):
        page = self.get("/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return self.post_form("/login/", {"username": username, "password": password,
                                          "csrfmiddlewaretoken": token})


@pytest.fixture(scope="module")
def admin(staging):
    """A user made with the image's own management command, and a logged-in session for it."""
    out = staging.manage("ensure_admin", "--username", "qa")
    password = re.search(r"with password: (\S+)", out).group(1)
    browser = Browser(staging.base_url)
    answer = browser.login("qa", password)
    return browser, answer


def test_app_runs_unprivileged_and_ca_not_in_image(staging):
    uid = staging.compose("exec", "-T", "app", "id", "-u").stdout.strip()
    assert uid == "10001"
    # The build's CA bundle stayed in the builder stage.
    found = staging.compose("exec", "-T", "app", "sh", "-c",
                            "ls /tmp/build-ca.pem /tmp/build-ca 2>/dev/null || echo none").stdout.strip()
    assert found == "none"


def test_only_nginx_publishes_a_port_on_loopback(staging):
    for service in ("redis", "postgres", "app"):
        ports = subprocess.run(["docker", "port", staging.container(service)], capture_output=True, text=True,
                               timeout=30).stdout.strip()
        assert ports == "", f"{service} publishes {ports}"
    nginx_ports = subprocess.run(["docker", "port", staging.container("nginx")], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
    assert nginx_ports == f"443/tcp -> 127.0.0.1:{staging.port}"


def test_static_files_served_by_nginx(staging):
    answer = Browser(staging.base_url).get("/static/admin/css/base.css")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/css")
    # The headers snippet is included in the static location too (an add_header there drops inherited ones).
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age" in answer.headers["Cache-Control"]
    assert b".module" in answer.read()


def test_healthz_through_nginx(staging):
    answer = Browser(staging.base_url).get("/healthz")
    body = json.loads(answer.read())
    assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_login_gives_a_session(staging, admin):
    browser, answer = admin
    assert answer.status == 200
    assert urllib.parse.urlparse(answer.geturl()).path == "/"
    assert browser.cookie("sessionid")
    page = browser.get("/").read().decode()
    assert "qa" in page
    # The session cookie is Secure (production settings), which only works because staging is HTTPS.
    assert next(c for c in browser.jar if c.name == "sessionid").secure


def ws_url(staging, deploy_id: int, after: int) -> str:
    return f"wss://127.0.0.1:{staging.port}/ws/deploys/{deploy_id}/?after={after}"


async def open_socket(staging, browser: Browser, deploy_id: int, after: int):
    return await connect(
        ws_url(staging, deploy_id, after), ssl=tls_context(), origin=staging.base_url,
        additional_headers={"Cookie": f"sessionid={browser.cookie('sessionid')}"}, open_timeout=10,
    )


class Collector:
    """Every event a client saw, by seq; the deploy's final status once it arrives."""

    def __init__(self):
        self.events: dict[int, dict] = {}
        self.duplicates = 0
        self.final: str | None = None

    @property
    def last_seq(self) -> int:
        return max(self.events, default=0)

    def take(self, frame: dict) -> None:
        if frame.get("type") != "events":
            return
        for event in frame["events"]:
            if event["seq"] in self.events:
                self.duplicates += 1
            self.events[event["seq"]] = event
            if event["kind"] == "status" and event["data"].get("status") in FINISHED:
                self.final = event["data"]["status"]


def test_websocket_without_session_is_not_served(staging):
    """No session cookie: the consumer closes with 4401 (docs/protocol.md) instead of sending a hello."""

    async def attempt():
        async with await connect(ws_url(staging, 1, 0), ssl=tls_context(), origin=staging.base_url,
                                 open_timeout=10) as socket:
            frames = []
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
            except ConnectionClosed:
                return socket.close_code, frames

    code, frames = run_coroutine(attempt())
    assert code == 4401
    assert all(frame.get("type") != "hello" for frame in frames)


def test_demo_deploy_reaches_websocket_and_client_resumes_after_app_restart(staging, admin):
    """The Celery worker in the app container runs a demo deploy; its events reach a WebSocket client
    through nginx → daphne. Mid-deploy the app container restarts; the client resumes with after=<last
    seq> and ends up with every event exactly once, 1..N without a gap."""
    browser, _ = admin
    staging.manage("seed_demo")
    # Started the way a tester does: the dashboard's start form, through nginx → uWSGI.
    browser.get("/")
    answer = browser.post_form("/deploys/start/", {
        "service": "demo", "environment": "staging", "version": "v-docker-test",
        "csrfmiddlewaretoken": browser.cookie("csrftoken"),
    })
    deploy_id = int(re.search(r"/deploys/(\d+)/$", answer.geturl()).group(1))
    seen = Collector()

    async def scenario():
        # 1. The socket upgrades through nginx and the worker's first events arrive live.
        socket = await open_socket(staging, browser, deploy_id, 0)
        assert socket.response.status_code == 101  # upgraded by nginx → daphne
        hello = json.loads(await asyncio.wait_for(socket.recv(), 20))
        assert hello["type"] == "hello" and hello["deploy"]["id"] == deploy_id
        while not any(e["kind"] == "log" for e in seen.events.values()):
            seen.take(json.loads(await asyncio.wait_for(socket.recv(), 60)))
        assert seen.final is None, "the demo deploy finished before the restart; it should take ~30 s"

        # 2. Restart the app container while the deploy runs; keep reading until the socket drops.
        restart = await asyncio.create_subprocess_exec(
            *staging.compose_cmd("restart", "app"), env=staging.env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            while True:
                seen.take(json.loads(await asyncio.wait_for(socket.recv(), 900)))
        except ConnectionClosed:
            pass
        output, _ = await asyncio.wait_for(restart.communicate(), 900)
        assert restart.returncode == 0, output.decode()
        dropped_at = seen.last_seq

        # 3. Reconnect through nginx (same name, maybe a new address) with after=<last seq>, bounded.
        resumed = None
        for _ in range(180):
            try:
                resumed = await open_socket(staging, browser, deploy_id, dropped_at)
                hello = json.loads(await asyncio.wait_for(resumed.recv(), 20))
                break
            except (TimeoutError, OSError, InvalidStatus, ConnectionClosed):
                resumed = None
                await asyncio.sleep(1)
        assert resumed is not None, "could not reconnect after the app restart"
        assert hello["type"] == "hello" and hello["after"] == dropped_at
        async with resumed:
            # The replay of what was missed (maybe nothing), then `live`, then live events to the end.
            while True:
                frame = json.loads(await asyncio.wait_for(resumed.recv(), 120))
                seen.take(frame)
                if frame.get("type") == "live":
                    break
            while seen.final is None:
                seen.take(json.loads(await asyncio.wait_for(resumed.recv(), 120)))

        # 4. What the client assembled across both sockets is exactly the stored history.
        full = Collector()
        async with await open_socket(staging, browser, deploy_id, 0) as replay:
            while True:
                frame = json.loads(await asyncio.wait_for(replay.recv(), 30))
                full.take(frame)
                if frame.get("type") == "live":
                    break
        return dropped_at, full

    dropped_at, full = run_coroutine(scenario())
    seqs = sorted(seen.events)
    assert seqs == list(range(1, seqs[-1] + 1)), f"gaps in seq (dropped at {dropped_at}): {seqs}"
    assert seen.duplicates == 0
    assert seen.events == full.events
    # Which final status depends on how supervisor stops the worker, not on staging: with the template's
    # stopasgroup=true the pool children get TERM too and the deploy ends `interrupted` (reported to the
    # bundle owner); with TERM to the main process only, Celery's warm shutdown lets it succeed. Either
    # way the status event is stored and reaches the resumed client.
    assert seen.final in FINISHED
    assert any(e["kind"] == "step" for e in seen.events.values())
    print(f"\ndeploy {deploy_id}: {len(seqs)} events, socket dropped at seq {dropped_at} by the restart, "
          f"final status {seen.final}")


def container_ip(container: str) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return subprocess.run(["docker", "inspect", "--format", fmt, container], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_nginx_follows_a_recreated_app_container(staging):
    """A new app container with a new address is found by name at request time (resolver 127.0.0.11 and a
    variable in uwsgi_pass), not the address nginx saw at start: no 502s after a recreate. Placeholder
    containers take the old address so the new app cannot get it back."""
    old_ip = container_ip(staging.container("app"))
    staging.compose("rm", "--stop", "--force", "app", timeout=900)
    network = f"{staging.project}_default"
    # Docker hands out the lowest free address; a few placeholders are enough to cover the old one.
    thieves = []
    try:
        for n in range(6):
            thieves.append(f"{staging.project}-ipthief{n}")
            subprocess.run(["docker", "run", "-d", "--rm", "--name", thieves[-1], "--network", network,
                            "--entrypoint", "sleep", f"herald/redis:{IMAGE_TAG}", "600"],
                           check=True, capture_output=True, timeout=60)
            if container_ip(thieves[-1]) == old_ip:
                break
        staging.compose("up", "-d", "--no-deps", "--no-build", "app", timeout=600)
        staging.wait_healthy("app", timeout=600)
        new_ip = container_ip(staging.container("app"))
        assert new_ip != old_ip
        answer = Browser(staging.base_url).get("/healthz")
        assert answer.status == 200
        access = staging.compose("logs", "--no-color", "--tail=5", "nginx").stdout
        assert f'"upstream_addr":"{new_ip}:3031"' in access
    finally:
        subprocess.run(["docker", "rm", "-f", *thieves], capture_output=True, timeout=60)


def test_down_v_leaves_nothing(staging):
    assert staging.leftovers()["containers"], "the stack should be running before down"
    down = staging.down()
    assert down.returncode == 0, down.stderr
    assert staging.leftovers() == {"containers": [], "volumes": [], "networks": []}
