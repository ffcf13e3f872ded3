"""The log-follow socket with a real Celery worker on the host's queue: lines, rotation, whitelist,
and the task ending within a second of the socket closing."""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from deploys import redis as herald_redis
from deploys.tasks import FOLLOW_LEASE_PREFIX
from tests.support.servers import terminate

from .conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)
APP_DIR = Path(__file__).resolve().parents[2] / "app"


@pytest.fixture
def followed(tmp_path, settings):
    log = tmp_path / "app.log"
    log.write_text("boot\n")
    settings.HERALD_LOG_FILES = {"testhost": {"app": str(log)}}
    return log


@pytest.fixture
def log_worker(redis_server, followed, tmp_path):
    """A real Celery worker consuming the `logs.testhost` queue."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "herald.settings.test",
        "REDIS_URL": redis_server.url,
        "HERALD_HOST_NAME": "testhost",
        "HERALD_LOG_FILES": json.dumps({"testhost": {"app": str(followed)}}),
        "HERALD_VAR_DIR": str(tmp_path),
    }
    out = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "herald",
            "worker",
            "-Q",
            "logs.testhost",
            "-c",
            "2",
            "--pool",
            "threads",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        cwd=APP_DIR,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker_log = tmp_path / "worker.log"
    deadline = time.monotonic() + 180  # a loaded 2-core machine can take a minute to import Django
    while "ready." not in worker_log.read_text():
        assert proc.poll() is None, f"the worker died:\n{worker_log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"the worker never got ready:\n{worker_log.read_text()[-2000:]}"
        time.sleep(0.2)
    yield proc, worker_log
    terminate(proc)


def leases() -> list:
    return herald_redis.client().keys(FOLLOW_LEASE_PREFIX + "*")


async def test_follow_stream_rotation_and_stop_on_close(engineer, followed, log_worker):
    _, worker_log = log_worker
    sock = await Socket.open("/ws/logs/", engineer)
    assert (await sock.recv()) == {"type": "hello", "files": {"testhost": ["app"]}}
    await sock.send({"action": "follow", "host": "testhost", "name": "app", "id": 1})
    assert (await sock.recv())["type"] == "following"
    got = []
    while "boot" not in got:
        got += (await sock.recv(timeout=20))["lines"]  # backlog, once the worker picked the task up
    with followed.open("a") as f:
        f.write("line after start\n")
    followed.rename(followed.with_suffix(".1"))
    followed.write_text("line in the new file\n")
    while "line in the new file" not in got:
        got += (await sock.recv(timeout=10))["lines"]
    assert got == ["boot", "line after start", "line in the new file"]

    assert len(await sync_to_async(leases)()) == 1
    await sock.close()
    assert await sync_to_async(leases)() == []
    closed_at = time.monotonic()
    while "lease-gone" not in worker_log.read_text() and time.monotonic() - closed_at < 30:
        await asyncio.sleep(0.05)
    # The task ends by itself because the lease is gone (its return value), not because a worker was
    # killed; it polls the lease every FOLLOW_POLL_SECONDS, so on an idle machine this takes ~0.2 s.
    assert "deploys.tasks.follow_log" in worker_log.read_text()
    assert "succeeded" in worker_log.read_text() and "'lease-gone'" in worker_log.read_text()
    print(f"follow task ended {time.monotonic() - closed_at:.2f}s after the socket closed")


async def test_stop_action_ends_the_follow(engineer, followed, log_worker):
    sock = await Socket.open("/ws/logs/", engineer)
    await sock.recv()
    await sock.send({"action": "follow", "host": "testhost", "name": "app"})
    await sock.recv_until("following")
    await sock.send({"action": "stop", "id": "s"})
    assert (await sock.recv_until("stopped"))["reason"] == "client"
    assert await sync_to_async(leases)() == []
    await sock.close()


@pytest.mark.parametrize(("host", "name"), [("testhost", "../etc/passwd"), ("otherhost", "app"), ("testhost", "")])
async def test_files_outside_the_whitelist_are_refused(engineer, followed, host, name):
    sock = await Socket.open("/ws/logs/", engineer)
    await sock.recv()
    await sock.send({"action": "follow", "host": host, "name": name})
    frame = await sock.recv()
    assert frame["type"] == "error" and frame["code"] in ("unknown_file", "missing_field")
    assert await sync_to_async(leases)() == []
    await sock.close()
