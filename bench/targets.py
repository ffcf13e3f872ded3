"""The three systems under test, behind one interface the scenarios use.

- HeraldTarget: the production topology from deploy/ (tests/support/stack.py's Stack) with PostgreSQL.
- BaselineTarget: the tutorial-style Channels app (bench/peers/baseline), one daphne, its own Redis.
- CeilingTarget: the bare websockets broadcast server (bench/peers/ceiling), one process per core.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from tests.support.servers import RedisServer, free_port, terminate, wait_for_port
from tests.support.stack import Stack

from bench import procs
from bench.load import Pinning, Subscribers
from bench.pg import Postgres

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
# Herald's subscribers each get a session of their own, up to this many (then they share, in turn).
SESSIONS = 20_000


def http_json(
    port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"raw": raw[:500].decode(errors="replace")}
    finally:
        conn.close()


class Target:
    name = "?"
    ws_port = 0  # where subscribers connect
    api_port = 0  # where the producer posts
    ws_headers: dict = {}
    ws_sessions = 1  # session cookies behind "{n}" in ws_headers (bench/client.py)
    api_headers: dict = {}
    settings: dict = {}

    def ws_url(self, deploy_id: int) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws/deploys/{deploy_id}/?after={{after}}"

    def subscribers(self, deploy_id: int, count: int, after: int, pinning: Pinning, **options) -> Subscribers:
        """`count` subscribers on the deploy, connecting as this target's clients do (its URL, headers and
        sessions); `options` go to Subscribers."""
        return Subscribers(
            self.ws_url(deploy_id), self.ws_headers, count, after, pinning, sessions=self.ws_sessions, **options
        )

    def events_path(self, deploy_id: int) -> str:
        return f"/api/v1/deploys/{deploy_id}/events/"

    def create_deploy(self, label: str) -> tuple[int, int]:
        status, body = http_json(
            self.api_port,
            "POST",
            "/api/v1/deploys/",
            {"service": label, "environment": "bench", "version": "v1", "started_by": "bench"},
            self.api_headers,
        )
        if status != 201:
            raise RuntimeError(f"{self.name}: create deploy → {status} {body}")
        return body["id"], body["last_seq"]

    def roles(self) -> dict[str, list[int]]:
        """{role: root pids}; CPU and RSS are summed over each root's process tree."""
        return {}

    def usage(self) -> dict[str, dict]:
        return {role: procs.usage(pids) for role, pids in self.roles().items()}

    def restart_ws(self) -> None:
        raise NotImplementedError

    def capacity_drops(self) -> int:
        """Lines logged by channels_redis for messages dropped over capacity, so far."""
        return 0

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------- Herald
class HeraldTarget(Target):
    name = "herald"

    def __init__(self, daphne: int = 2, uwsgi: int = 2, extra_vars: dict | None = None, variant: str = ""):
        self.variant = variant
        if variant:
            self.name = f"herald-{variant}"
        self.extra_vars = dict(extra_vars or {})
        # `--set herald_daphne_processes=N` (bench.probe, make bench) must reach the stack's own count
        # too: it waits for each daphne socket it expects.
        self.daphne = int(self.extra_vars.pop("herald_daphne_processes", daphne))
        self.uwsgi = int(self.extra_vars.pop("herald_uwsgi_processes", uwsgi))
        if variant:
            # bench/tuning/<variant>_settings.py: Herald's settings with one change under test.
            self.extra_vars.setdefault("herald_settings_module", f"bench.tuning.{variant}_settings")
            self.extra_vars.setdefault("herald_extra_env", {"PYTHONPATH": f"{ROOT / 'app'}:{ROOT}"})
        self.pg: Postgres | None = None
        self.stack: Stack | None = None

    def start(self) -> HeraldTarget:
        self.pg = Postgres().start()
        ev = {
            "herald_database_url": self.pg.url,
            "herald_daphne_processes": self.daphne,
            "herald_uwsgi_processes": self.uwsgi,
            # Production's ping interval (the test stack stretches it to 120 s).
            "herald_daphne_ping_interval": 20,
            # One client address sends everything here; the per-address limit would measure the limiter.
            "herald_api_rate": "1000000r/s",
            "herald_api_burst": 1000000,
            "herald_extra_env": {},
            **self.extra_vars,
        }
        self.stack = Stack(daphne_processes=self.daphne, extra_vars=ev)
        self.stack.__enter__()
        self.ws_port = self.api_port = self.stack.http_port
        self.ws_headers = self.stack.ws_headers(self._session_per_subscriber(self.stack.login()))
        self.ws_sessions = SESSIONS
        token = self.stack.manage("create_token", "--name", "bench").stdout.strip().splitlines()[-1]
        self.api_headers = {"Authorization": f"Bearer {token}"}
        self.settings = {
            "daphne_processes": self.daphne,
            "uwsgi_processes": self.uwsgi,
            "database": "postgresql (scripts/lib/test-postgres.sh)",
            "postgresql": Postgres.settings,
            "variant": self.variant or "as shipped",
            **{k: v for k, v in ev.items() if k != "herald_database_url"},
        }
        return self

    def _session_per_subscriber(self, cookie: str) -> str:
        """One session per subscriber, as in a crowd of browsers: copies of the logged-in session under
        SESSIONS new keys (its data is signed without the key, so each copy is as good as a login), and
        the cookie with "{n}" where the key goes. Sockets sharing one session would share its read."""
        key = re.search(r"sessionid=([^;]+)", cookie).group(1)
        prefix = secrets.token_hex(8)
        with psycopg.connect(self.pg.url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date)"
                " SELECT %s || n, session_data, expire_date FROM django_session, generate_series(0, %s - 1) AS n"
                " WHERE session_key = %s",
                [prefix, SESSIONS, key],
            )
        return cookie.replace(f"sessionid={key}", f"sessionid={prefix}{{n}}")

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.__exit__(None, None, None)
            self.stack = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None

    def roles(self) -> dict[str, list[int]]:
        programs = self.stack.programs()
        pick = lambda prefix: [pid for name, (_s, pid) in programs.items() if name.startswith(prefix) and pid]  # noqa: E731
        return {
            "daphne": pick("daphne"),
            "uwsgi": pick("uwsgi"),
            "celery": pick("worker") + pick("beat"),
            "nginx": [self.stack.nginx.pid] if self.stack.nginx else [],
            "redis": [self.stack.redis.proc.pid] if self.stack.redis.proc else [],
            "postgres": self.pg.pids(),
        }

    def restart_ws(self) -> None:
        self.stack.ctl("restart", "daphne:*")

    def capacity_drops(self) -> int:
        total = 0
        for path in self.stack.log.glob("*.log"):
            total += path.read_text(errors="replace").count("over capacity")
        return total


# ---------------------------------------------------------------------------- baseline
class BaselineTarget(Target):
    name = "baseline"

    def __init__(self):
        self.redis = RedisServer(password="bench-baseline")
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="herald-bench-baseline-", suffix=".log")[1])

    def _spawn(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.peers.baseline.settings",
            "BASELINE_REDIS_URL": self.redis.url,
            "PYTHONPATH": str(ROOT),
        }
        self.proc = subprocess.Popen(
            [
                str(VENV / "bin/daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.ws_port),
                "bench.peers.baseline.app:application",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.ws_port, timeout=60)

    def start(self) -> BaselineTarget:
        self.redis.start()
        self.ws_port = self.api_port = free_port()
        self._spawn()
        self.settings = {
            "daphne_processes": 1,
            "channel_layer": "RedisChannelLayer defaults (capacity 100)",
            "storage": "none",
            "replay": "none",
        }
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None
        self.redis.close()
        self.log.unlink(missing_ok=True)

    def roles(self) -> dict[str, list[int]]:
        return {
            "daphne": [self.proc.pid] if self.proc else [],
            "redis": [self.redis.proc.pid] if self.redis.proc else [],
        }

    def restart_ws(self) -> None:
        terminate(self.proc, timeout=15)
        self._spawn()

    def capacity_drops(self) -> int:
        return self.log.read_text(errors="replace").count("over capacity")


# ---------------------------------------------------------------------------- ceiling
class CeilingTarget(Target):
    name = "ceiling"

    def __init__(self, workers: int | None = None):
        self.workers = workers or len(os.sched_getaffinity(0))
        self.proc: subprocess.Popen | None = None

    def start(self) -> CeilingTarget:
        self.ws_port, self.api_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.peers.ceiling.server",
                "--ws-port",
                str(self.ws_port),
                "--http-port",
                str(self.api_port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.api_port, timeout=30)
        wait_for_port(self.ws_port, timeout=30)
        self.settings = {"ws_processes": self.workers, "sequencer": "1 process (HTTP ingest)"}
        return self

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.proc = None

    def roles(self) -> dict[str, list[int]]:
        return {"server": [self.proc.pid] if self.proc else []}

    def restart_ws(self) -> None:
        status, body = http_json(self.api_port, "POST", "/control/drop", {})
        if status != 200:
            raise RuntimeError(f"ceiling drop → {status} {body}")
        time.sleep(0.01)


TARGETS = {
    "herald": HeraldTarget,
    "herald-pubsub": lambda **kw: HeraldTarget(variant="pubsub", **kw),
    "baseline": BaselineTarget,
    "ceiling": CeilingTarget,
}
