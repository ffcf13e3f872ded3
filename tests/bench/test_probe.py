"""bench.probe at toy size, so the quick A/B tool cannot rot: it runs a fan-out against a real stack and
reports every event delivered once. Its figures are printed, never asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_fanout_probe_delivers_everything_once(tmp_path):
    argv = ["fanout", "--subscribers", "6", "--rate", "10", "--seconds", "1", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.probe", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^ramp: 6/6 in ", proc.stdout, re.M), proc.stdout
    fanout = re.search(r"^fanout: (\d+) frames, (\d+) events, (\{[^}]*\})", proc.stdout, re.M)
    assert fanout, proc.stdout
    frames, events = int(fanout[1]), int(fanout[2])
    assert events > 0 and events % 6 == 0 and frames == events  # one single-event frame per socket and request
    assert fanout[3] == "{'lost': 0, 'behind': 0, 'dups': 0, 'reordered': 0}"
