"""The micro-benchmarks (bench/micro.py) at toy size, so they cannot rot. Figures are printed,
never asserted; only that each variant ran and produced one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> list[list[str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.micro", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "herald.settings.base"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_fanout_compares_both_deliveries():
    rows = _run("fanout", "--sockets", "20", "--messages", "5", "--rounds", "1")
    assert [row[1] for row in rows] == ["channel per socket (pub/sub layer)", "herald fanout"]
    assert all(float(row[2]) > 0 for row in rows)


@pytest.mark.timeout(120)
def test_watchers_times_joins_at_each_size():
    rows = _run("watchers", "--sizes", "50,200")
    assert [(row[0], row[1]) for row in rows] == [("50", "5"), ("200", "20")]
    assert all(float(cell) > 0 for row in rows for cell in row[2:])


@pytest.mark.timeout(120)
def test_client_compares_both_clients():
    """Against HEAD's client, which every clone has (CI's may be shallow); docs/benchmarks.md quotes the
    default, the asyncio-websockets client of an older commit."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    args = ("--sockets", "20", "--messages", "5", "--rounds", "1", "--batches", "1,2", "--rate", "20")
    rows = _run("client", *args, "--against", head.stdout.strip())
    old = f"client at {head.stdout.strip()[:7]}"
    assert [(row[1], row[2]) for row in rows] == [(old, "1"), ("this tree", "1"), (old, "2"), ("this tree", "2")]
    for row in rows:
        frames, events, wrong = int(row[3]), int(row[4]), int(row[5])
        assert (frames, events // int(row[2]), wrong) == (100, 100, 0), row
        assert float(row[7]) > 0, row
