"""The images on their own: sizes, no compiler at runtime, and supervisor's FATAL → container exit."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from .conftest import IMAGE_TAG

# Builds on a cold cache take minutes on a shared 2-core machine; a safety net, not a speed assertion.
pytestmark = pytest.mark.timeout(1800)
APP_IMAGE = f"herald/app:{IMAGE_TAG}"


def test_images_built_and_sizes_recorded(built_images):
    for name in ("app", "nginx", "redis", "postgres", "base"):
        assert built_images[name] > 0
    line = ", ".join(f"{name} {size:.0f} MB" for name, size in sorted(built_images.items()))
    print(f"\nDocker image sizes (herald/*:{IMAGE_TAG}): {line} (also test-artifacts/docker-images.json)")


def test_app_image_has_no_compiler_and_labels(built_images):
    probe = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", APP_IMAGE, "-c",
         "command -v gcc cc x86_64-linux-gnu-gcc-12 || echo none; id -u; supervisord --version; uwsgi --version"],
        capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    no_compiler, uid, supervisor_version, uwsgi_version = probe.stdout.split()
    assert no_compiler == "none"
    assert uid == "10001"
    assert supervisor_version.startswith("4.3")
    assert uwsgi_version.startswith("2.0")
    labels = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", APP_IMAGE],
                            capture_output=True, text=True, timeout=30).stdout
    assert '"org.opencontainers.image.title":"herald-app"' in labels
    assert '"org.opencontainers.image.base.name":"herald/debian-base:bookworm"' in labels


def test_fatal_program_stops_the_container(built_images):
    """A uWSGI config typo (strict mode refuses it at once) puts uwsgi in FATAL after supervisor's
    retries; the fatal-watch listener stops supervisord and the container exits, so the restart policy
    acts instead of a half-dead container. UWSGI_* variables are uWSGI options, so the typo needs no file."""
    name = f"heraldtest-fatal-{secrets.token_hex(4)}"
    env = ["-e", "UWSGI_HERALD_TYPO=1", "-e", "DJANGO_SECRET_KEY=fatal-test", "-e", "DJANGO_ALLOWED_HOSTS=localhost"]
    try:
        proc = subprocess.run(["docker", "run", "--name", name, *env, APP_IMAGE], capture_output=True, text=True,
                              timeout=300)
        state = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", name], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
    logs = proc.stdout + proc.stderr
    assert "unknown config directive: herald-typo" in logs
    assert "HERALD ALERT: uwsgi entered FATAL" in logs, logs[-4000:]
    assert "stopping supervisord so the container restarts" in logs
    assert state == "exited"
