"""What the figures were taken on: cores, memory, load, versions and the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    pg_bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gib": round(int(meminfo["MemTotal"].split()[0]) / 1024 / 1024, 1),
        "loadavg_at_start": os.getloadavg(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": _run(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(_run(["git", "status", "--porcelain", "--untracked-files=no"])),
        "versions": {
            **{
                d: _version(d)
                for d in (
                    "django",
                    "channels",
                    "channels-redis",
                    "daphne",
                    "uwsgi",
                    "websockets",
                    "picows",
                    "orjson",
                    "uvloop",
                    "twisted",
                    "redis",
                    "psycopg",
                    "celery",
                )
            },
            "nginx": _run(["nginx", "-v"]) or _nginx_version(),
            "redis-server": _run(["redis-server", "--version"]).split(" v=")[-1].split()[0]
            if _run(["redis-server", "--version"])
            else None,
            "postgresql": _run([str(pg_bins[-1]), "--version"]) if pg_bins else None,
        },
    }


def _nginx_version() -> str:
    try:
        return subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10).stderr.strip()
    except OSError:
        return ""
