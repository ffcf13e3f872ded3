"""The benchmark harness at smoke size, so it cannot rot: it runs every scenario against Herald, the
tutorial-style baseline and the ceiling, and asserts correctness only — Herald and the ceiling lose,
duplicate and reorder nothing, and the JSON and the Markdown table are written. Speed is never
asserted here; `make bench` measures it (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The whole smoke (three systems, five scenarios) runs once, in the module fixture; on a busy shared
# machine it can take longer than the suite's per-test default.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--profile", "smoke", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    files = sorted(out.glob("2*.json"))
    assert len(files) == 1, list(out.iterdir())
    return out, json.loads(files[0].read_text()), proc.stdout


def _steps(target: dict) -> list[tuple[str, dict]]:
    conn = target["connections"]
    steps = [
        ("held", conn["held"]),
        ("broadcast", conn["broadcast"]),
        ("storm", conn["storm"]),
        ("latency", target["latency"]),
    ]
    steps += [(f"fanout {s['subscribers']}", s) for s in target["fanout"]]
    steps.append(("capacity", target["capacity"]))
    steps += [(f"ingest {k}", v) for k, v in target["ingest"].items()]
    return steps


def test_every_target_ran_every_scenario(smoke_run):
    _out, run, log = smoke_run
    assert set(run["targets"]) == {"herald", "baseline", "ceiling"}
    for name, target in run["targets"].items():
        assert target["errors"] == [], (name, target["errors"], log[-3000:])
        assert {"connections", "latency", "fanout", "capacity", "ingest"} <= set(target), name
    assert run["machine"]["cores"] >= 1 and run["machine"]["git_commit"]


@pytest.mark.parametrize("name", ["herald", "ceiling"])
def test_nothing_lost_duplicated_or_reordered(smoke_run, name):
    _out, run, _log = smoke_run
    target = run["targets"][name]
    params = run["params"]
    assert target["connections"]["held"]["live_at_end"] == params["held"]
    for label, step in _steps(target):
        assert (step["lost"], step["behind"], step["dups"], step["reordered"], step["failed"]) == (0, 0, 0, 0, 0), (
            label,
            step,
        )
    for step in [target["latency"], *target["fanout"], target["capacity"]]:
        # Every subscriber got every event the producer had accepted.
        assert step["delivered_events"] == step["expected_events"] > 0, step
    storm = target["connections"]["storm"]
    assert storm["closed"] == params["held"] and storm["not_resumed"] == 0, storm
    assert target["connections"]["broadcast"]["complete"] == params["broadcasts"]


def test_figures_are_measured(smoke_run):
    """The figures the report needs exist for every target (values are not judged here)."""
    _out, run, _log = smoke_run
    for name, target in run["targets"].items():
        fan = target["fanout"][-1]
        assert fan["delivered_events"] > 0 and fan["latency_ms"]["n"] > 0, (name, fan)
        assert target["ingest"]["single"]["requests"] > 0, name
        assert target["ingest"]["batch"]["requests"] > 0, name
        assert target["connections"]["held"]["rss_at_n_mib"] > 0, name


def test_table_written(smoke_run):
    out, run, _log = smoke_run
    table = (out / "latest.md").read_text()
    assert "| figure | target | herald | herald: met? |" in table
    assert "| figure | herald | baseline | ceiling | Herald/baseline | Herald/ceiling |" in table
    assert run["started"] in table
    assert json.loads((out / "latest.json").read_text())["started"] == run["started"]
