"""Run the benchmark: every scenario against Herald, the tutorial-style baseline and the ceiling.

    python -m bench --profile smoke|full [--targets herald,baseline,ceiling] [--out DIR] [--chart]
                    [--update-docs] [--set key=value ...] [--pin auto|none]

Writes <out>/<timestamp>.json (every figure, the machine and the commit), <timestamp>.md (the tables)
and, with --chart, <timestamp>.png; the latest run is also copied to latest.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, report, scenarios
from bench.load import Pinning
from bench.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]

# Sizes per profile. `full` fits `make bench` in about 20 minutes on 2 cores; `smoke` is for make test.
PROFILES = {
    "smoke": {
        "held": 30,
        "hold_s": 1,
        "broadcasts": 3,
        "broadcast_gap_s": 0.3,
        "storm_rate": 10,
        "storm_s": 3,
        "storm_restart_after_s": 1.0,
        "storm_timeout_s": 60,
        "ramp_timeout_s": 90,
        "fanout_subscribers": [20],
        "fanout_rate": 10,
        "fanout_batch": 2,
        "fanout_s": 1.5,
        "capacity_subscribers": 20,
        "capacity_rate": 40,
        "latency_subscribers": 10,
        "latency_rate": 5,
        "latency_s": 1.5,
        "ingest_s": 1.0,
        "ingest_connections": 2,
        "ingest_batch": 100,
        "ingest_watchers": 3,
        "drain_s": 30,
        "stall_s": 3,
        "per_proc": 5000,
        "connect_concurrency": 32,
        "herald_daphne": 2,
        "herald_uwsgi": 2,
        "settle_cpu": 0.5,
        "settle_max_s": 10,
    },
    "full": {
        "held": 10000,
        "hold_s": 30,
        "broadcasts": 10,
        "broadcast_gap_s": 1.0,
        "storm_rate": 5,
        "storm_s": 30,
        "storm_restart_after_s": 5.0,
        "storm_timeout_s": 60,
        "ramp_timeout_s": 180,
        "fanout_subscribers": [100, 300, 1000],
        "fanout_rate": 10,
        "fanout_batch": 5,
        "fanout_s": 10,
        # The capacity step offers ten times the last fan-out step: more than Herald or the baseline can
        # deliver, so their ratios to the ceiling measure capacity rather than an offered rate all of
        # them keep up with (the steps above top out at 50,000/s, which Herald and the ceiling both
        # delivered in full — a 1.00× that said nothing).
        "capacity_subscribers": 1000,
        "capacity_rate": 100,
        "latency_subscribers": 1000,
        "latency_rate": 5,
        "latency_s": 15,
        "ingest_s": 10,
        "ingest_connections": 8,
        "ingest_batch": 1000,
        "ingest_watchers": 10,
        # Saturated steps drain for at most this long: 30 s made the full run 23 minutes.
        "drain_s": 20,
        "stall_s": 8,
        "per_proc": 5000,
        "connect_concurrency": 32,
        "herald_daphne": 2,
        "herald_uwsgi": 2,
        # Between scenarios, wait (at most settle_max_s) until the servers use less than settle_cpu of a
        # core: after the reconnect storm a daphne still works through handshakes its clients gave up
        # on, which the next scenario would otherwise pay for.
        "settle_cpu": 0.1,
        "settle_max_s": 120,
    },
}


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    return out


def raise_nofile(n: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n), max(hard, n)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_target(name: str, params: dict, pin: Pinning, log) -> dict:
    kwargs = (
        {
            "daphne": params["herald_daphne"],
            "uwsgi": params["herald_uwsgi"],
            "extra_vars": params.get("herald_extra_vars"),
        }
        if name.startswith("herald")
        else {}
    )
    # The machine is shared: the load average beside each target's figures says how busy it was.
    result: dict = {"target": name, "errors": [], "loadavg_at_start": os.getloadavg()}
    t0 = time.monotonic()
    with TARGETS[name](**kwargs) as target:
        result["settings"] = target.settings
        result["start_s"] = round(time.monotonic() - t0, 1)
        log(f"{name}: up in {result['start_s']} s")
        p = params

        def fan(subscribers: int, rate: float, batch: int, seconds: float) -> dict:
            return scenarios.fanout(target, pin, p, subscribers, rate, batch, seconds, log)

        steps = [
            ("connections", lambda: scenarios.held_broadcast_storm(target, pin, p, log)),
            ("latency", lambda: fan(p["latency_subscribers"], p["latency_rate"], 1, p["latency_s"])),
            (
                "fanout",
                lambda: [fan(m, p["fanout_rate"], p["fanout_batch"], p["fanout_s"]) for m in p["fanout_subscribers"]],
            ),
            (
                "capacity",
                lambda: fan(p["capacity_subscribers"], p["capacity_rate"], p["fanout_batch"], p["fanout_s"]),
            ),
            ("ingest", lambda: scenarios.ingest(target, pin, p, log)),
        ]
        result["settled_s"] = {}
        for key, step in steps:
            if key in params.get("skip", []):
                continue
            waited = result["settled_s"][key] = scenarios.settle(target, params)
            if waited > 3:
                log(f"{name}: servers busy for {waited} s before {key}")
            try:
                result[key] = step()
            except Exception as exc:  # one failing scenario must not hide the others' figures
                log(f"{name}: {key} failed: {exc!r}")
                result["errors"].append({"scenario": key, "error": repr(exc), "trace": traceback.format_exc()[-3000:]})
        result["capacity_drop_logs"] = target.capacity_drops()
    result["total_s"] = round(time.monotonic() - t0, 1)
    result["loadavg_at_end"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--targets", default="herald,baseline,ceiling")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--chart", action="store_true", help="also draw the PNG (needs matplotlib)")
    parser.add_argument("--update-docs", action="store_true", help="rewrite the figures in docs/benchmarks.md")
    parser.add_argument("--pin", choices=["auto", "none"], default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one size")
    parser.add_argument("--note", default="", help="conditions worth recording (other load on the machine…)")
    args = parser.parse_args(argv)

    params = {**PROFILES[args.profile], **parse_set(args.set)}
    raise_nofile()
    pin = Pinning(args.pin)
    pin.apply_to_self()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    run = {
        "started": started.isoformat(timespec="seconds"),
        "profile": args.profile,
        "params": params,
        "machine": machine.describe(),
        "pinning": pin.describe(),
        "note": args.note,
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "targets": {},
    }
    log(
        f"profile {args.profile}; servers on cores {pin.server}, load on {pin.load}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name in [n.strip() for n in args.targets.split(",") if n.strip()]:
        try:
            run["targets"][name] = run_target(name, params, pin, log)
        except Exception as exc:
            log(f"{name}: could not run: {exc!r}")
            run["targets"][name] = {
                "target": name,
                "errors": [{"scenario": "start", "error": repr(exc), "trace": traceback.format_exc()[-3000:]}],
            }
    run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    run["loadavg_at_end"] = os.getloadavg()

    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(run, indent=1, default=str))
    md = report.markdown(run)
    (args.out / f"{stamp}.md").write_text(md)
    files = [json_path, args.out / f"{stamp}.md"]
    if args.chart:
        png = args.out / f"{stamp}.png"
        report.chart(run, png)
        files.append(png)
    for path in files:
        shutil.copyfile(path, args.out / f"latest{path.suffix}")
    if args.update_docs:
        report.update_docs(ROOT / "docs/benchmarks.md", md)
    print(md)
    log(f"wrote {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
