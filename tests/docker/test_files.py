"""Static checks of the Docker staging files; no engine needed, so they run first and fast."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile", "deploy/docker/redis.Dockerfile", "deploy/docker/postgres.Dockerfile"]


def compose_binary() -> str:
    """Debian's docker-compose 1.29 (installed by the Makefile's docker targets when missing)."""
    if not shutil.which("docker-compose"):
        subprocess.run([str(ROOT / "scripts/lib/ensure-packages.sh"), "docker-compose"], check=True, timeout=600)
    return shutil.which("docker-compose")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_clean(dockerfile):
    """No finding at any level; an ignored rule carries its reason on the line above the pragma."""
    proc = subprocess.run([str(ROOT / ".venv/bin/hadolint"), "--failure-threshold", "info", dockerfile],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (ROOT / dockerfile).read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert number > 0 and lines[number - 1].startswith("# ") and "hadolint" not in lines[number - 1], (
                f"{dockerfile}:{number + 1}: say why the rule is ignored on the line above"
            )


def seconds(value: str) -> int:
    """Compose durations as `config` prints them: 12m, 30s, 1m30s."""
    total, number = 0, ""
    for char in value:
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total


def test_compose_config_valid_with_example_env():
    proc = subprocess.run([compose_binary(), "--env-file", ".env.staging.example", "-f", "docker-compose.prod.yml",
                           "config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert set(services) == {"redis", "postgres", "migrate", "app", "nginx"}
    # Only nginx publishes a port, and on loopback.
    assert [name for name, svc in services.items() if svc.get("ports")] == ["nginx"]
    assert services["nginx"]["ports"] == ["127.0.0.1:8443:443/tcp"]
    for name, svc in services.items():
        if name == "migrate":
            assert svc["restart"] == "no" and svc["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
            continue
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"], name
        for condition in svc.get("depends_on", {}).values():
            assert condition["condition"] in ("service_healthy", "service_completed_successfully"), name
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Celery's warm shutdown must not be cut short by Docker's SIGKILL.
    stopwaitsecs = yaml.safe_load((ROOT / "deploy/profiles/defaults.yml").read_text())["herald_celery_stopwaitsecs"]
    assert seconds(services["app"]["stop_grace_period"]) > stopwaitsecs


def test_compose_refuses_to_start_without_secrets(tmp_path):
    """A missing secret stops compose before anything starts, naming the variable and the file."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    proc = subprocess.run([compose_binary(), "--env-file", str(env_file), "-f", "docker-compose.prod.yml", "config"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "in .env.staging" in proc.stderr


def test_example_env_has_only_placeholders():
    """The committed example must never hold a usable secret."""
    values = dict(
        line.split("=", 1) for line in (ROOT / ".env.staging.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for key in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert values[key].startswith("CHANGE-ME"), key
