"""bench.probe at toy size, so the quick A/B tool cannot rot: it runs a fan-out, and a restart of every
daphne, against a real stack and reports every event delivered once. Its figures are printed, never
asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _probe(*argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.probe", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.timeout(300)
def test_fanout_probe_delivers_everything_once(tmp_path):
    stdout = _probe("fanout", "--subscribers", "6", "--rate", "10", "--seconds", "1", "--out", str(tmp_path))
    assert re.search(r"^ramp: 6/6 in ", stdout, re.M), stdout
    fanout = re.search(r"^fanout: (\d+) frames, (\d+) events, (\{[^}]*\})", stdout, re.M)
    assert fanout, stdout
    frames, events = int(fanout[1]), int(fanout[2])
    assert events > 0 and events % 6 == 0 and frames == events  # one single-event frame per socket and request
    assert fanout[3] == "{'lost': 0, 'behind': 0, 'dups': 0, 'reordered': 0}"


@pytest.mark.timeout(300)
def test_storm_probe_brings_every_socket_back_with_nothing_lost(tmp_path):
    argv = ["storm", "--subscribers", "6", "--rate", "5", "--seconds", "3", "--storm-timeout", "60"]
    stdout = _probe(*argv, "--out", str(tmp_path))
    storm = re.search(
        r"^storm: restart [\d.]+ s; (\d+)/(\d+) back, .*failed handshakes; (\d+) frames, (\d+) events; (\{[^}]*\})",
        stdout,
        re.M,
    )
    assert storm, stdout
    assert (storm[1], storm[2]) == ("6", "6")
    assert int(storm[4]) >= int(storm[3]) > 0  # a frame carries one event or more
    assert storm[5] == "{'lost': 0, 'behind': 0, 'dups': 0, 'reordered': 0}"
