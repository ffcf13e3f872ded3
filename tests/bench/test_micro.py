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


def test_dispatch_compares_both_loops():
    rows = _run("dispatch", "--sockets", "20", "--messages", "5", "--rounds", "1")
    assert [row[1] for row in rows] == ["channels await_many_dispatch", "herald pump_into"]
    assert all(float(row[2]) > 0 for row in rows)


@pytest.mark.timeout(120)
def test_watchers_times_joins_at_each_size():
    rows = _run("watchers", "--sizes", "50,200")
    assert [(row[0], row[1]) for row in rows] == [("50", "5"), ("200", "20")]
    assert all(float(cell) > 0 for row in rows for cell in row[2:])


@pytest.mark.timeout(120)
def test_client_compares_both_clients():
    rows = _run("client", "--sockets", "20", "--messages", "5", "--rounds", "1", "--batches", "1,2", "--rate", "20")
    assert [(row[1], row[2]) for row in rows] == [
        ("client at b0392d7", "1"),
        ("this tree", "1"),
        ("client at b0392d7", "2"),
        ("this tree", "2"),
    ]
    for row in rows:
        frames, events, wrong = int(row[3]), int(row[4]), int(row[5])
        assert (frames, events // int(row[2]), wrong) == (100, 100, 0), row
        assert float(row[7]) > 0, row
