"""The whole single-host stack for tests: nginx → uWSGI + daphne ×N, Celery worker and beat under
supervisord, and a private redis-server, all from the configs deploy/render.py renders for the
`local` profile (the same files `make run` uses), on free loopback ports under one temporary directory.

    with Stack() as stack:            # or the session-scoped `herald_stack` fixture below
        cookie = stack.login()
        stack.http("GET", "/", cookie=cookie)

Everything started here is stopped at the end, even when a test fails. The stack tests, the browser
tests and the benchmarks can all share one instance through `herald_stack`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from tests.support.servers import RedisServer, free_port, terminate, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
VENV = Path(sys.executable).parent.parent
PASSWORD = "stack-test password 42"

# Quick housekeeping so a vanished runner is noticed in seconds, not the production half-minute.
TEST_ENV = {
    "HERALD_HEARTBEAT_SECONDS": "0.5",
    "HERALD_INTERRUPTED_AFTER_SECONDS": "4",
    "HERALD_HOUSEKEEPING_SECONDS": "1",
}

# One Django start-up seeds everything the tests need: users, environments, a service whose step
# prints numbered lines (count and delay from the step's argv) and one that sleeps.
SEED = """
import json, os, sys
from django.contrib.auth.models import User
from django.core.management import call_command
from deploys.management.commands.ensure_admin import ensure_release_engineers
from deploys.models import Environment, Service, ServiceStep
group = ensure_release_engineers()
user = User.objects.create_superuser("stack", "", os.environ["HERALD_TEST_PASSWORD"])
user.groups.add(group)
for order, slug in enumerate(["staging", "production"]):
    Environment.objects.update_or_create(slug=slug, defaults={"order": order})
emit = ("import sys, time\\nn, d = int(sys.argv[1]), float(sys.argv[2])\\n"
        "for i in range(1, n + 1):\\n    print(f'line {i} of {n}', flush=True)\\n    time.sleep(d)\\n")
for slug, count, delay in json.loads(os.environ["HERALD_TEST_SERVICES"]):
    service = Service.objects.create(slug=slug, name=slug)
    ServiceStep.objects.create(service=service, position=0, name="emit", timeout_seconds=120,
                               argv=[sys.executable, "-c", emit, str(count), str(delay)])
"""

# (service slug, lines its step prints, seconds between lines)
SERVICES = [
    ("quick", 20, 0.02),   # a short deploy for the plain "reaches the browser" check
    ("steady", 60, 0.1),   # ~6 s of output: long enough to break something in the middle
    ("steady-b", 60, 0.1),  # a second one, so two fault tests never wait on the same lock
    ("sleeper", 1, 25),    # prints once, then sits there until its worker is killed
]


def parse_env_file(path: Path) -> dict[str, str]:
    """herald.env as bash and systemd read it: KEY=value with shell quoting, # comments."""
    env = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return env


class ThroughNginx:
    """HTTP and WebSocket helpers for a Herald served by nginx on 127.0.0.1:`http_port`; shared by the
    test stack and by the tests that drive `make run` itself."""

    http_port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def http(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
             cookie: str = "", timeout: float = 30) -> tuple[int, dict, str]:
        """One request through nginx; no redirects followed. Returns (status, lower-case headers, text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            all_headers = dict(headers or {})
            if cookie:
                all_headers["Cookie"] = cookie
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            raw_headers: dict = {}
            for key, value in response.getheaders():
                raw_headers.setdefault(key.lower(), []).append(value)
            data = response.read().decode(errors="replace")
            return response.status, {k: ", ".join(v) for k, v in raw_headers.items()} | {
                "set-cookie-list": raw_headers.get("set-cookie", [])}, data
        finally:
            conn.close()

    def login(self, username: str = "stack", password: str = PASSWORD) -> str:
        """Log in through the real login form (nginx → uWSGI → Django); returns a Cookie header value."""
        status, headers, page = self.http("GET", "/login/")
        assert status == 200, (status, page[:500])
        csrf = _cookie(headers, "csrftoken")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        status, headers, body = self.http(
            "POST", "/login/", body=form, cookie=f"csrftoken={csrf}",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": self.base_url},
        )
        assert status == 302, f"login failed: {status} {body[:500]}"
        return f"csrftoken={csrf}; sessionid={_cookie(headers, 'sessionid')}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.http_port}{path}"

    def ws_headers(self, cookie: str) -> dict:
        return {"Cookie": cookie, "Origin": self.base_url}


class Stack(ThroughNginx):
    """One running Herald: call start(), then use the helpers, then stop() (or use `with`)."""

    def __init__(self, daphne_processes: int = 2, extra_vars: dict | None = None):
        # Short path: unix socket names must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="herald-stack-"))
        self.etc, self.sock, self.log = self.root / "etc", self.root / "sock", self.root / "log"
        self.redis = RedisServer(password=secrets.token_urlsafe(16))
        self.http_port = free_port()
        self.daphne_port = free_port()
        self.daphne_processes = daphne_processes
        self.extra_vars = extra_vars or {}
        self.supervisord: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ life cycle
    def local_vars(self) -> dict:
        """What scripts/run.sh would keep in run/local-vars.yml, plus the test's own settings."""
        return {
            "herald_local_root": str(self.root),
            "herald_var_dir": str(self.root / "var"),
            "herald_secret_key": secrets.token_urlsafe(40),
            "herald_redis_port": self.redis.port,
            "herald_redis_password": self.redis.password,
            "herald_http_port": self.http_port,
            "herald_daphne_port": self.daphne_port,
            "herald_daphne_processes": self.daphne_processes,
            # Foreground, so this process owns them and can always stop them.
            "herald_supervisord_nodaemon": True,
            "herald_nginx_foreground": True,
            # Daphne's keepalive pings would hide an nginx read timeout; with them rarer than the
            # idle test's 65 s, only nginx's proxy_read_timeout decides whether an idle socket lives.
            "herald_daphne_ping_interval": 120,
            "herald_extra_env": TEST_ENV,
            **self.extra_vars,
        }

    def start(self) -> Stack:
        started = time.monotonic()
        for path in (self.etc, self.sock, self.log):
            path.mkdir(parents=True, exist_ok=True)
        (self.root / "local-vars.yml").write_text(yaml.safe_dump(self.local_vars()))
        self.render()
        # herald.env wins over pytest-django's DJANGO_SETTINGS_MODULE and anything else inherited.
        self.env = {**os.environ, **parse_env_file(self.etc / "herald.env")}
        Path(self.env["HERALD_STATIC_ROOT"]).mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.shell(SEED, HERALD_TEST_PASSWORD=PASSWORD, HERALD_TEST_SERVICES=json.dumps(SERVICES))
        self.timings["prepare"] = time.monotonic() - started
        self.supervisord = subprocess.Popen(
            [str(VENV / "bin/supervisord"), "-c", str(self.etc / "supervisor/supervisord.conf")],
            env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.nginx = subprocess.Popen(
            ["nginx", "-c", str(self.etc / "nginx/nginx.conf"), "-e", str(self.log / "nginx-error.log")],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.http_port, timeout=30)
        self.wait_healthy(timeout=120)
        self.wait_programs_running(timeout=60)
        self.wait_daphnes(timeout=120)
        self.timings["start"] = time.monotonic() - started
        return self

    def render(self) -> str:
        """deploy/render.py exactly as scripts/run.sh and scripts/reload.sh call it."""
        return self.run(
            [sys.executable, str(ROOT / "deploy/render.py"), "--profile", "local", "--out", str(self.etc),
             "--vars", str(self.root / "local-vars.yml")], env=os.environ
        ).stdout

    def stop(self) -> None:
        for proc in (self.nginx, self.supervisord):
            if proc is not None:
                terminate(proc, timeout=30)
        self.redis.close()

    def close(self) -> None:
        self.stop()
        if os.environ.get("HERALD_KEEP_STACK"):
            print(f"stack kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.dump_logs()
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ commands
    def run(self, argv, env=None, check=True, timeout=180, cwd=None, **kwargs) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, env=env or self.env, cwd=cwd or APP, capture_output=True, text=True,
                              timeout=timeout, **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv[:3]}… exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def manage(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "manage.py", *args], **kwargs)

    def shell(self, code: str, **env: str) -> str:
        """Run Python in `manage.py shell` with the stack's settings; returns its stdout."""
        return self.run([sys.executable, "manage.py", "shell", "-c", code], env={**self.env, **env}).stdout

    def ctl(self, *args: str, check: bool = True) -> str:
        """supervisorctl through scripts/ctl.sh, the runbook's command for one component."""
        return self.run(["bash", str(ROOT / "scripts/ctl.sh"), *args], cwd=ROOT, check=check,
                        env={**os.environ, "HERALD_RUN_ROOT": str(self.root)}).stdout

    def script(self, name: str, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        """One of the operator scripts (scripts/<name>.sh) against this stack, as `make` runs it."""
        return self.run(["bash", str(ROOT / "scripts" / f"{name}.sh"), *args], cwd=ROOT, check=check,
                        env={**os.environ, "HERALD_RUN_ROOT": str(self.root), **env}, timeout=400)

    # ------------------------------------------------------------------ state
    def programs(self) -> dict[str, tuple[str, int]]:
        """supervisorctl status → {name: (state, pid)}."""
        result = {}
        for line in self.ctl("status", check=False).splitlines():
            parts = line.split()
            if len(parts) >= 2:
                match = re.search(r"pid (\d+)", line)
                result[parts[0]] = (parts[1], int(match.group(1)) if match else 0)
        return result

    def wait_programs_running(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            programs = self.programs()
            if programs and all(state == "RUNNING" for state, _ in programs.values()):
                return programs
            time.sleep(0.3)
        raise AssertionError(f"programs not all RUNNING after {timeout}s: {self.programs()}")

    def wait_daphnes(self, timeout: float = 60) -> None:
        """Every daphne answers on its own socket (per-process sockets), as scripts/run.sh waits."""
        for n in range(self.daphne_processes):
            sock = self.sock / f"daphne-{n}.sock"
            if self.local_vars().get("herald_daphne_socket", "per-process") == "per-process":
                self.run([sys.executable, str(ROOT / "scripts/lib/herald_ctl.py"), "wait-daphne", "--socket",
                          str(sock), "--timeout", str(timeout)], timeout=timeout + 10)

    def wait_healthy(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                status, _, body = self.http("GET", "/healthz")
                last = (status, body[:300])
                if status == 200:
                    return json.loads(body)
            except OSError as exc:
                last = exc
            time.sleep(0.3)
        self.dump_logs()
        raise AssertionError(f"/healthz not 200 through nginx after {timeout}s: {last}")

    def dump_logs(self, lines: int = 30) -> None:
        """Print the tail of every log (pytest shows it for a failing test)."""
        for path in sorted(self.log.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            print(f"----- {path.name}\n" + "\n".join(text))

    def daphne_connections(self) -> dict[int, int]:
        """{daphne pid: connections from nginx it holds}, read from /proc: which daphne serves whom.

        Per-process sockets: accepted unix sockets carry the listener's path in /proc/net/unix.
        Shared listener: established TCP sockets on the daphne port in /proc/net/tcp."""
        inodes = {}
        for name, (_state, pid) in self.programs().items():
            if name.startswith("daphne:") and pid:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    try:
                        target = os.readlink(fd)
                    except OSError:
                        continue
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = pid
        counts = {pid: 0 for pid in set(inodes.values())}
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path; St 03 = connected
            if len(fields) == 8 and fields[5] == "03" and fields[6] in inodes and "/daphne-" in fields[7]:
                counts[inodes[fields[6]]] += 1
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.daphne_port and fields[3] == "01" and fields[9] in inodes:
                    counts[inodes[fields[9]]] += 1
        return counts

    # ------------------------------------------------------------------ deploys
    def start_deploy(self, service: str, environment: str = "staging") -> int:
        """Queue a deploy for the real Celery worker (as the dashboard's Start button does)."""
        out = self.shell(
            "from deploys import operations\n"
            f"print(operations.start_deploy({service!r}, {environment!r}, 'v-test', started_by='stack').pk)"
        )
        return int(out.strip().splitlines()[-1])

    def deploy_state(self, deploy_id: int) -> tuple[str, int]:
        """(status, number of stored events) straight from the database."""
        out = self.shell(
            "from deploys.models import Deploy\n"
            f"d = Deploy.objects.get(pk={deploy_id}); print(d.status, d.events.count())"
        )
        status, count = out.split()[-2:]
        return status, int(count)

    def wait_deploy(self, deploy_id: int, statuses: set[str], timeout: float = 60) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        state = ("?", 0)
        while time.monotonic() < deadline:
            state = self.deploy_state(deploy_id)
            if state[0] in statuses:
                return state
            time.sleep(0.5)
        raise AssertionError(f"deploy {deploy_id} still {state[0]} after {timeout}s (wanted {statuses})")

    def access_log(self) -> list[dict]:
        """nginx's JSON access log, one dict per request."""
        path = self.log / "nginx-access.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def signal_program(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send a signal to one supervisor program's process group, as an OOM kill or `kill -9` would."""
        deadline = time.monotonic() + 60
        state, pid = self.programs().get(name, ("?", 0))
        while (state != "RUNNING" or not pid) and time.monotonic() < deadline:
            time.sleep(0.3)  # e.g. supervisor is restarting it after a crash of its own
            state, pid = self.programs().get(name, ("?", 0))
        # supervisord puts each child in its own process group; never signal supervisord's own group.
        assert pid and os.getpgid(pid) == pid, f"{name} (pid {pid}) does not lead its process group"
        os.killpg(pid, sig)
        return pid


def _cookie(headers: dict, name: str) -> str:
    for value in headers.get("set-cookie-list", []):
        match = re.match(rf"{name}=([^;]*)", value)
        if match:
            return match.group(1)
    raise AssertionError(f"no {name} cookie in {headers.get('set-cookie-list')}")


_SHARED: dict = {"stack": None, "users": 0}


@pytest.fixture(scope="session")
def herald_stack():
    """One running stack for the whole session (stack tests, browser tests, benchmarks).

    Each test directory's conftest imports this fixture, which pytest then treats as separate
    session fixtures; the module-level instance keeps it to one stack (a start costs 40–110 s here)."""
    if _SHARED["stack"] is None:
        stack = Stack()
        stack.__enter__()
        print(f"stack up in {stack.timings['start']:.1f} s (prepare {stack.timings['prepare']:.1f} s)")
        _SHARED["stack"] = stack
    _SHARED["users"] += 1
    try:
        yield _SHARED["stack"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            stack, _SHARED["stack"] = _SHARED["stack"], None
            stack.__exit__(None, None, None)
