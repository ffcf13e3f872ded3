"""One scenario against one Herald stack, with the server CPU per unit of work and an optional py-spy
profile: the quick A/B behind a change, before the full `make bench` measures the sum of them.

    python -m bench.probe fanout --subscribers 2000 --rate 5           # CPU per delivered frame
    python -m bench.probe ingest --batch 1000 --connections 2          # CPU per request, by role
    python -m bench.probe ramp --subscribers 2000                      # CPU and memory per socket
    python -m bench.probe fanout --set herald_nginx_ws_buffer_size=8k  # one bundle variable changed
    python -m bench.probe fanout --profile daphne                      # + py-spy (GIL samples) per pid
    python -m bench.probe storm --subscribers 4000                     # restart daphne:*, time them back

Every step starts with a ramp of --subscribers sockets on a fresh deploy, so each prints the ramp's
figures too. To compare two commits, run the same command in a git worktree of each, one after the
other (alternate, and repeat: a shared machine drifts). Profiles go to --out as py-spy's raw
(collapsed-stack) files, one per process, and the top frames are printed.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.load import Background, Pinning, Subscribers, produce
from bench.procs import tree
from bench.scenarios import producer_cfg
from bench.targets import HeraldTarget

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = Path(sys.executable).parent / "py-spy"


def _per(delta: dict, count: int, scale: float) -> dict:
    return {role: round(scale * cpu / max(1, count), 2) for role, cpu in delta.items()}


def _checks(got: dict) -> dict:
    return {k: got[k] for k in ("lost", "behind", "dups", "reordered")}


def _cpu(before: dict, after: dict) -> dict:
    return {role: round(after[role]["cpu_s"] - before[role]["cpu_s"], 2) for role in after}


class Profiler:
    """py-spy on every process of the chosen roles, for one step (GIL samples: time spent in Python)."""

    def __init__(self, target: HeraldTarget, roles: list[str], out: Path, step: str, seconds: float | None):
        self.procs = []
        out.mkdir(parents=True, exist_ok=True)
        for role in roles:
            for pid in tree(target.roles()[role]):
                path = out / f"{step}-{role}-{pid}.txt"
                argv = [str(PY_SPY), "record", "-p", str(pid), "-r", "200", "--gil", "--nonblocking"]
                argv += ["-f", "raw", "-o", str(path)] + (["-d", str(int(seconds) + 1)] if seconds else [])
                self.procs.append((path, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

    def report(self, top: int = 25, stop: bool = False) -> None:
        own, total = collections.Counter(), 0
        for path, proc in self.procs:
            if stop:
                proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
            proc.wait()
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                stack, _, n = line.rpartition(" ")
                own[stack.split(";")[-1]] += int(n)
                total += int(n)
        print(f"  py-spy: {total} samples; where the time was spent (own frame):")
        for frame, n in own.most_common(top):
            print(f"    {100 * n / max(1, total):5.1f} %  {frame[:140]}")


def _storm(target: HeraldTarget, subs: Subscribers, deploy_id: int, last: int, pin: Pinning, roles, args) -> None:
    """Restart every daphne while a producer runs; how long until every socket is back, and the
    server CPU that took per socket back (against the ramp's per socket: the storm's overhead)."""
    time.sleep(1)
    subs.mark()
    cfg = producer_cfg(target, deploy_id, connections=2, batch=1, duration=args.seconds, rate=args.rate)
    u0 = target.usage()
    bg = Background(cfg, pin)
    try:
        time.sleep(1)
        t_restart = time.time()
        target.restart_ws()
        restart_s = time.time() - t_restart
        # The restarted processes, from their start.
        spy = Profiler(target, roles, args.out, "storm", None) if roles else None
        made = bg.result(timeout=args.seconds + 120)
    finally:
        bg.kill()
    got = subs.report(made["last_seq"] or last, timeout=args.storm_timeout, stall=args.storm_timeout)
    after = target.usage()
    cpu = _cpu(u0, after)
    cpu["daphne"] = round(after["daphne"]["cpu_s"], 2)  # every daphne is new since the restart
    back = got["subs_closed"] - got["not_resumed"]
    checks = _checks(got)
    resumed = round(got["last_resumed_at"] - t_restart, 1) if got["last_resumed_at"] else None
    print(
        f"storm: restart {restart_s:.1f} s; {back}/{got['subs_closed']} back, the last {resumed} s after it; "
        f"{got['handshake_failures']} failed handshakes; {got['frames']} frames, {got['events']} events; {checks}; "
        f"server CPU s {cpu}; CPU ms per socket back {_per(cpu, back, 1000)}"
    )
    if spy:
        spy.report(stop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["ramp", "fanout", "ingest", "storm"])
    parser.add_argument("--subscribers", type=int, help="sockets on the deploy (default 1,000; ingest: 10 watchers)")
    parser.add_argument("--rate", type=float, default=5, help="fanout: producer requests per second")
    parser.add_argument("--batch", type=int, default=1, help="events per request")
    parser.add_argument("--connections", type=int, default=4, help="producer connections")
    parser.add_argument("--seconds", type=float, default=15, help="how long the producer runs")
    parser.add_argument("--storm-timeout", type=float, default=180, help="storm: how long to wait for all back")
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE", help="a bundle variable")
    parser.add_argument("--profile", default="", help="roles to run py-spy on, e.g. daphne,uwsgi")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/probe")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            extra[name] = json.loads(value)
        except ValueError:
            extra[name] = value
    pin = Pinning("auto")
    pin.apply_to_self()
    roles = [r for r in args.profile.split(",") if r]
    subscribers = args.subscribers or (10 if args.step == "ingest" else 1000)
    with HeraldTarget(extra_vars=extra) as target:
        deploy_id, last = target.create_deploy(f"probe-{int(time.time())}")
        u0 = target.usage()
        spy = Profiler(target, roles, args.out, "ramp", None) if roles and args.step == "ramp" else None
        with target.subscribers(deploy_id, subscribers, last, pin, ready_timeout=600) as subs:
            ready = subs.wait_ready()
            u1 = target.usage()
            n = max(1, ready["connected"])
            print(
                f"ramp: {ready['connected']}/{subscribers} in {ready['ramp_s']:.1f} s; "
                f"CPU ms per socket {_per(_cpu(u0, u1), n, 1000)}; "
                f"KiB per socket { {r: round((u1[r]['rss'] - u0[r]['rss']) / n / 1024, 1) for r in u1} }"
            )
            if spy:
                spy.report(stop=True)
            if args.step == "ramp":
                return 0
            if args.step == "storm":
                _storm(target, subs, deploy_id, last, pin, roles, args)
                return 0
            time.sleep(1)
            subs.mark()
            u2 = target.usage()
            spy = Profiler(target, roles, args.out, args.step, args.seconds) if roles else None
            cfg = producer_cfg(target, deploy_id, connections=args.connections, batch=args.batch, duration=args.seconds)
            cfg.update({"mode": "max"} if args.step == "ingest" else {"rate": args.rate})
            made = produce(cfg, pin, timeout=args.seconds + 300)
            got = subs.report(made["last_seq"], timeout=60)
            cpu = _cpu(u2, target.usage())
            checks = _checks(got)
            if args.step == "fanout":
                print(
                    f"fanout: {got['frames']} frames, {got['events']} events, {checks}; latency {got['latency_ms']}; "
                    f"server CPU µs per frame {_per(cpu, got['frames'], 1e6)}; client CPU {got['client_cpu_s']:.1f} s"
                )
            else:
                print(
                    f"ingest: {made['requests']} requests, {made['rps']:.1f}/s, {made['eps']:.0f} events/s, "
                    f"p50/p99 {made['latency_ms']['p50']}/{made['latency_ms']['p99']} ms, {checks}; "
                    f"server CPU ms per request {_per(cpu, made['requests'], 1000)}"
                )
            if spy:
                spy.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
