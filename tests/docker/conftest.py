"""The staging stack of docker-compose.prod.yml, really built and started, for tests/docker.

One stack per test module under a unique Compose project name, with its own secrets, on a free
127.0.0.1 port. Images are built FROM herald/debian-base:bookworm (debootstrap, no registry); the engine
caches layers between runs, so only the first run pays for uWSGI's compile. `down -v` runs at the end
even when a test fails; test_staging.py also asserts that it leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.prod.yml"
BASE_IMAGE = "herald/debian-base:bookworm"
IMAGE_TAG = "test"
# The build trusts what this host trusts: here pip reaches PyPI through a TLS-inspecting proxy whose CA
# is in the system bundle (/work/shared/brief/environment.md).
BUILD_CA = "/etc/ssl/certs/ca-certificates.crt"
SERVICES = ("redis", "postgres", "migrate", "app", "nginx")


def run(cmd: list[str], *, timeout: float, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command from the repository root; on failure the error shows its output."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def docker_ready() -> None:
    """Start dockerd if nothing answers (installs docker.io and docker-compose when missing)."""
    run([str(ROOT / "scripts/lib/ensure-packages.sh"), "debootstrap", "docker-compose"], timeout=600)
    run([str(ROOT / "scripts/lib/ensure-dockerd.sh")], timeout=600)


def image_size_mb(image: str) -> float:
    out = run(["docker", "image", "inspect", "--format", "{{.Size}}", image], timeout=30).stdout
    return int(out.strip()) / 1e6


class Staging:
    """One Compose project of docker-compose.prod.yml and helpers that drive it from outside."""

    def __init__(self, workdir: Path):
        self.project = f"heraldtest{secrets.token_hex(4)}"
        self.port = free_port()
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.env_file = workdir / "env.staging"
        # URL-safe secrets, as .env.staging.example asks; new ones every run.
        self.env_file.write_text(
            "\n".join(
                [
                    f"DJANGO_SECRET_KEY={secrets.token_urlsafe(40)}",
                    "DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1",
                    f"DJANGO_CSRF_TRUSTED_ORIGINS={self.base_url}",
                    f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}",
                    f"REDIS_PASSWORD={secrets.token_urlsafe(24)}",
                    "HERALD_BIND_ADDRESS=127.0.0.1",
                    f"HERALD_HTTPS_PORT={self.port}",
                    "HERALD_TLS_NAME=localhost",
                    f"HERALD_BASE_IMAGE={BASE_IMAGE}",
                    "HERALD_IMAGE_PREFIX=herald",
                    f"HERALD_IMAGE_TAG={IMAGE_TAG}",
                ]
            )
            + "\n"
        )
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("HERALD_")}

    def compose_cmd(self, *args: str) -> list[str]:
        return ["docker-compose", "--project-name", self.project, "--env-file", str(self.env_file),
                "-f", str(COMPOSE_FILE), *args]

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(self.compose_cmd(*args), timeout=timeout, env=self.env, check=check)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def manage(self, *args: str, timeout: float = 120) -> str:
        """`manage.py <args>` inside the running app container; its stdout."""
        return self.compose("exec", "-T", "app", "python", "app/manage.py", *args, timeout=timeout).stdout

    def state(self, service: str) -> str:
        cid = self.container(service)
        if not cid:
            return "missing"
        fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
        return run(["docker", "inspect", "--format", fmt, cid], timeout=30).stdout.strip()

    def wait_healthy(self, service: str, timeout: float = 240) -> None:
        """Poll the container's health until healthy; fail with its health log and the stack's logs."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.state(service)
            if state == "running healthy":
                return
            if state.startswith(("exited", "dead")) or state == "running unhealthy":
                break
            time.sleep(1)
        raise AssertionError(f"{service} not healthy ({state}) within {timeout}s\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        """Health logs and the last lines of every service's log, for a failure message."""
        parts = [self.compose("ps", check=False).stdout]
        for service in SERVICES:
            cid = self.container(service)
            if cid:
                health = run(["docker", "inspect", "--format", "{{json .State.Health}}", cid], timeout=30,
                             check=False).stdout
                parts.append(f"--- {service} health: {health.strip()[-1500:]}")
        logs = self.compose("logs", "--no-color", "--tail=60", check=False)
        parts.append(logs.stdout[-8000:])
        return "\n".join(parts)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks Docker still holds for this project."""
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, cmd in (
            ("containers", ["docker", "ps", "-a", "-q", "--filter", label]),
            ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
            ("networks", ["docker", "network", "ls", "-q", "--filter", label]),
        ):
            found[kind] = run(cmd, timeout=30).stdout.split()
        return found

    def down(self) -> subprocess.CompletedProcess:
        return self.compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout=300, check=False)


@pytest.fixture(scope="session")
def built_images() -> dict[str, float]:
    """Base image (debootstrap, cached by tag) and the four stack images (layer cache); sizes in MB."""
    docker_ready()
    run([str(ROOT / "scripts/lib/docker-base-image.sh"), BASE_IMAGE], timeout=900)
    env = dict(os.environ, HERALD_BASE_IMAGE=BASE_IMAGE, HERALD_IMAGE_TAG=IMAGE_TAG, HERALD_IMAGE_PREFIX="herald",
               HERALD_BUILD_CA=BUILD_CA if Path(BUILD_CA).is_file() else "")
    started = time.monotonic()
    run([str(ROOT / "scripts/lib/docker-build-images.sh")], timeout=1500, env=env)
    build_seconds = time.monotonic() - started
    sizes = {name: image_size_mb(f"herald/{name}:{IMAGE_TAG}") for name in ("app", "nginx", "redis", "postgres")}
    sizes["base"] = image_size_mb(BASE_IMAGE)
    report = {"build_seconds": round(build_seconds, 1), "size_mb": {k: round(v, 1) for k, v in sizes.items()}}
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "docker-images.json").write_text(json.dumps(report, indent=2) + "\n")
    return sizes


@pytest.fixture(scope="module")
def staging(built_images):
    """The running stack, healthy end to end (nginx waits for the app, the app for migrate/db/redis)."""
    workdir = Path(tempfile.mkdtemp(prefix="herald-staging-"))
    stack = Staging(workdir)
    try:
        up = stack.compose("up", "-d", "--no-build", timeout=600, check=False)
        if up.returncode != 0:
            raise AssertionError(f"compose up failed:\n{up.stderr[-4000:]}\n{stack.diagnostics()}")
        stack.wait_healthy("nginx")
        yield stack
    finally:
        stack.down()
        shutil.rmtree(workdir, ignore_errors=True)
