"""A live Herald for the browser tests: Redis, a migrated SQLite file, daphne (runserver) serving
HTTP + WebSocket + static files, a Celery worker running real deploys, and Debian's Chromium.

Everything runs on free loopback ports under one temporary directory and is stopped at the end of the
session, even when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import RedisServer, free_port, terminate, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
    # A wheel scroll otherwise animates over several frames, so a position read right after
    # mouse.wheel() may be mid-way: test_log's follow-mode check once read 8400 where the scroll
    # ended at 6900 (a clean-clone make test on 1 December).
    "--disable-smooth-scrolling",
]

# Users, environments and services every test can rely on. Steps run tests/web/emit.py.
# One Django start-up for all of it: on a busy 2-core machine each start-up costs seconds.
SEED = """
import json, os
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from deploys.models import ApiToken, Environment, Service, ServiceStep
spec = json.loads(os.environ["HERALD_TEST_SEED"])
perm = Permission.objects.get(codename="start_deploy", content_type__app_label="deploys")
for name, can_deploy in (("alice", True), ("bob", False)):
    user = User.objects.create_user(name, password=os.environ["HERALD_TEST_PASSWORD"])
    if can_deploy:
        user.user_permissions.add(perm)
for order, slug in enumerate(["staging", "production"]):
    Environment.objects.create(slug=slug, order=order)
for slug, steps in spec.items():
    service = Service.objects.create(slug=slug, name=slug.replace("-", " ").title())
    for position, (name, argv) in enumerate(steps):
        ServiceStep.objects.create(service=service, position=position, name=name, argv=argv, timeout_seconds=120)
print(ApiToken.issue("browser-tests", ["deploys:write", "deploys:read"])[1])
"""


BULK_LOG = """
import os
from deploys.events import NewEvent, record
deploy_id, count = int(os.environ["HERALD_TEST_DEPLOY"]), int(os.environ["HERALD_TEST_COUNT"])
make_line = eval("lambda i: " + os.environ["HERALD_TEST_LINE"])
for start in range(1, count + 1, 5000):
    stop = min(count, start + 4999)
    record(deploy_id, [NewEvent("log", {"line": make_line(i), "stream": "stdout"}) for i in range(start, stop + 1)])
"""


def emit(prefix: str, count: int, delay: float, exit_code: int = 0) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("emit.py")), prefix, str(count), str(delay), str(exit_code)]


SERVICES = {
    # ~5 s in all: the happy path a release engineer watches.
    "quick-api": [("build", emit("build", 10, 0.1)), ("migrate", emit("migrate", 5, 0.1)),
                  ("rollout", emit("rollout", 10, 0.3))],
    # ~16 s of steady output: long enough to restart the server in the middle.
    "steady-api": [("prepare", emit("prepare", 10, 0.05)), ("stream", emit("stream", 250, 0.06))],
    # Long enough to be locked and cancelled.
    "slow-api": [("wait", emit("wait", 600, 0.1))],
}


class Herald:
    """The live stack and small helpers to drive it through its public interfaces."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.redis = RedisServer().start()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.followed = tmp / "app.log"
        self.followed.write_text("")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "herald.settings.base",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "HERALD_VAR_DIR": str(tmp),
            "HERALD_STATIC_ROOT": str(tmp / "static"),
            "REDIS_URL": self.redis.url,
            "HERALD_HOST_NAME": "local",
            "HERALD_LOG_FILES": json.dumps({"local": {"app": str(self.followed)}}),
            "HERALD_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: dict[str, subprocess.Popen] = {}
        seeded = self.manage("shell", "-c", SEED, HERALD_TEST_SEED=json.dumps(SERVICES), HERALD_TEST_PASSWORD=PASSWORD)
        self.token = seeded.strip().splitlines()[-1]
        self.start_server(wait=False)
        self.procs["celery"] = self._spawn(
            "celery",
            [str(ROOT / ".venv/bin/celery"), "-A", "herald", "worker", "-Q", "deploys,logs.local", "-c", "2",
             "--without-gossip", "--without-mingle", "-l", "WARNING"],
        )
        wait_for_port(self.port, timeout=60)

    def manage(self, *args: str, **extra_env: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=APP, env={**self.env, **extra_env},
            capture_output=True, text=True, timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        # The child keeps its own copy of the file descriptor; ours closes on leaving the block.
        with open(self.tmp / f"{name}.log", "ab") as logfile:
            return subprocess.Popen(argv, cwd=APP, env=self.env, stdout=logfile, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start_server(self, wait: bool = True) -> None:
        """daphne's runserver: HTTP, WebSocket and (with --insecure) static files on one port. System
        checks are skipped to start faster (`make lint`/`check-deploy` and the Django tests run them)."""
        self.procs["web"] = self._spawn(
            "web", [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", "--skip-checks",
                    f"127.0.0.1:{self.port}"]
        )
        if wait:
            wait_for_port(self.port, timeout=60)

    def stop_server(self) -> None:
        terminate(self.procs.pop("web"))

    def close(self) -> None:
        for proc in self.procs.values():
            terminate(proc)
        self.redis.close()

    # ------------------------------------------------------------------ the ingest API, as a pipeline uses it
    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + "/api/v1/" + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def external_deploy(self, service: str, version: str, environment: str = "staging", by: str = "ci#1") -> dict:
        return self.api("POST", "deploys/", {"service": service, "environment": environment, "version": version,
                                             "started_by": by})

    def log(self, deploy_id: int, lines: list[str], step: int | None = None, stream: str = "stdout") -> dict:
        """Post log lines in batches of at most 1000 events (the API's limit per request)."""
        answer = {}
        for start in range(0, len(lines), 1000):
            events = []
            for line in lines[start:start + 1000]:
                data = {"line": line, "stream": stream}
                if step is not None:
                    data["step"] = step
                events.append({"kind": "log", "data": data})
            answer = self.api("POST", f"deploys/{deploy_id}/events/", {"events": events})
        return answer

    def bulk_log(self, deploy_id: int, count: int, line_code: str) -> None:
        """Store `count` log lines through the lead's Python API (deploys.events.record) in one Django
        process, 5000 a batch: far quicker than 100 HTTP requests for a 100k-line log. line_code is
        a Python expression of i (1-based) giving line i."""
        self.manage("shell", "-c", BULK_LOG, HERALD_TEST_DEPLOY=str(deploy_id), HERALD_TEST_COUNT=str(count),
                    HERALD_TEST_LINE=line_code)

    def events(self, deploy_id: int, events: list[dict]) -> dict:
        return self.api("POST", f"deploys/{deploy_id}/events/", {"events": events})

    def finish(self, deploy_id: int, status: str = "succeeded") -> dict:
        return self.api("POST", f"deploys/{deploy_id}/finish/", {"status": status})

    def deploy(self, deploy_id: int) -> dict:
        return self.api("GET", f"deploys/{deploy_id}/")


@pytest.fixture(scope="session")
def herald():
    tmp = Path(tempfile.mkdtemp(prefix="herald-web-"))
    live = Herald(tmp)
    try:
        yield live
    finally:
        live.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def sessions(herald, browser, tmp_path_factory):
    """Storage state (session cookie) per user, made by signing in through the login page once."""
    states = {}
    for user in ("alice", "bob"):
        context = browser.new_context(base_url=herald.base_url)
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(herald.base_url + "/")
        path = tmp_path_factory.mktemp("state") / f"{user}.json"
        context.storage_state(path=str(path))
        states[user] = str(path)
        context.close()
    return states


@pytest.fixture
def as_user(herald, browser, sessions):
    """as_user("alice") → a new page signed in as alice (its context closes after the test)."""
    contexts = []

    def make(user: str, **options):
        context = browser.new_context(base_url=herald.base_url, storage_state=sessions[user],
                                      viewport=options.pop("viewport", {"width": 1400, "height": 900}), **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    errors: list[str] = []
    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """Poll predicate() until it returns something truthy; fail naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path

