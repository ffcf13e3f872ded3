"""The five scenarios of issue 7, each run the same way against every target."""

from __future__ import annotations

import itertools
import time

from bench.load import Background, Pinning, produce
from bench.targets import Target

_labels = itertools.count(1)


def _delta(before: dict, after: dict) -> dict:
    """CPU seconds per role between two usage() snapshots, and their sum."""
    roles = {role: round(after[role]["cpu_s"] - before.get(role, {"cpu_s": 0})["cpu_s"], 2) for role in after}
    return {"by_role": roles, "total": round(sum(roles.values()), 2)}


def settle(t: Target, p: dict) -> float:
    """Seconds until the target's servers were idle (two quiet seconds in a row), or settle_max_s."""
    t0 = time.monotonic()
    quiet = 0
    before = t.usage()
    while time.monotonic() - t0 < p["settle_max_s"] and quiet < 2:
        time.sleep(1)
        after = t.usage()
        quiet = quiet + 1 if _delta(before, after)["total"] < p["settle_cpu"] else 0
        before = after
    return round(time.monotonic() - t0, 1)


def _rss(usage: dict, roles: list[str] | None = None) -> int:
    return sum(u["rss"] for role, u in usage.items() if roles is None or role in roles)


def producer_cfg(t: Target, deploy_id: int, **kw) -> dict:
    """What bench.producer needs to post to one deploy of `t` (120-byte lines, 4 connections unless
    said)."""
    return {
        "host": "127.0.0.1",
        "port": t.api_port,
        "path": t.events_path(deploy_id),
        "headers": t.api_headers,
        "line_bytes": 120,
        "connections": 4,
        **kw,
    }


def _correct(r: dict) -> dict:
    return {k: r[k] for k in ("lost", "behind", "dups", "reordered", "unexpected_closes", "failed")}


def held_broadcast_storm(t: Target, pin: Pinning, p: dict, log) -> dict:
    """Scenarios 1, 3 and 5 on one ramp: hold N subscribers, broadcast single events to them, then
    restart every WebSocket process while a producer runs."""
    n = p["held"]
    deploy_id, last = t.create_deploy(f"held-{next(_labels)}")
    out: dict = {"subscribers": n}
    u0 = t.usage()
    with t.subscribers(
        deploy_id,
        n,
        last,
        pin,
        per_proc=p["per_proc"],
        concurrency=p["connect_concurrency"],
        ready_timeout=p["ramp_timeout_s"] + 30,
    ) as subs:
        out["ramp"] = ready = subs.wait_ready()
        log(f"  {t.name}: {ready['connected']}/{n} subscribed in {ready['ramp_s']:.1f} s")
        time.sleep(2)
        u1 = t.usage()
        subs.mark()
        time.sleep(p["hold_s"])
        u2 = t.usage()
        held = subs.report(last, timeout=5)
        connected = max(1, ready["connected"])
        mem_roles = [r for r in ("daphne", "nginx", "redis", "server") if r in u1]
        out["held"] = {
            "hold_s": p["hold_s"],
            "live_at_end": held["live"],
            **_correct(held),
            "close_codes": held["close_codes"],
            "rss_at_0_mib": round(_rss(u0, mem_roles) / 2**20, 1),
            "rss_at_n_mib": round(_rss(u1, mem_roles) / 2**20, 1),
            "memory_roles": mem_roles,
            "kib_per_subscriber": round((_rss(u1, mem_roles) - _rss(u0, mem_roles)) / connected / 1024, 1),
            "kib_per_subscriber_by_role": {r: round((u1[r]["rss"] - u0[r]["rss"]) / connected / 1024, 1) for r in u1},
            "idle_cpu_pct": round(100 * _delta(u1, u2)["total"] / p["hold_s"], 1),
            "ramp_cpu": _delta(u0, u1),
        }
        log(
            f"  {t.name}: held {held['live']} for {p['hold_s']} s, {out['held']['kib_per_subscriber']} KiB each, "
            f"idle CPU {out['held']['idle_cpu_pct']} %"
        )

        # Scenario 3: one event at a time to everyone; the last receiver's latency per event.
        subs.mark(track_seqs=True)
        u3 = t.usage()
        pr = produce(
            producer_cfg(
                t,
                deploy_id,
                rate=1 / p["broadcast_gap_s"],
                batch=1,
                duration=p["broadcast_gap_s"] * (p["broadcasts"] - 0.5),
                connections=1,
            ),
            pin,
            timeout=300,
        )
        r = subs.report(pr["last_seq"], timeout=p["drain_s"], stall=p["stall_s"])
        worst = sorted(v[1] for v in r.get("per_seq", {}).values())
        complete = sum(1 for v in r.get("per_seq", {}).values() if v[0] >= ready["connected"])
        pick = lambda q: round(worst[min(len(worst) - 1, int(len(worst) * q))], 1) if worst else None  # noqa: E731
        out["broadcast"] = {
            "events": pr["requests"],
            "complete": complete,
            "last_receiver_ms": {"p50": pick(0.5), "p95": pick(0.95), "max": round(worst[-1], 1) if worst else None},
            "latency_ms": r["latency_ms"],
            **_correct(r),
            "server_cpu": _delta(u3, t.usage()),
            "client_cpu_s": round(r["client_cpu_s"], 2),
        }
        last = pr["last_seq"] or last
        log(
            f"  {t.name}: broadcast to {ready['connected']}: "
            f"last receiver p95 {out['broadcast']['last_receiver_ms']['p95']} ms"
        )

        # Scenario 5: restart every WebSocket process while a deploy is producing.
        subs.mark()
        bg = Background(
            producer_cfg(t, deploy_id, rate=p["storm_rate"], batch=1, duration=p["storm_s"], connections=2), pin
        )
        try:
            time.sleep(p["storm_restart_after_s"])
            t_restart = time.time()
            t.restart_ws()
            restart_s = time.time() - t_restart
            pr = bg.result(timeout=p["storm_s"] + 120)
        finally:
            bg.kill()
        r = subs.report(pr["last_seq"] or last, timeout=p["storm_timeout_s"], stall=p["stall_s"])
        out["storm"] = {
            "restart_command_s": round(restart_s, 2),
            "events_produced": pr["events_ok"],
            "producer_statuses": pr["statuses"],
            "closed": r["subs_closed"],
            "not_resumed": r["not_resumed"],
            "all_resumed_s": round(r["last_resumed_at"] - t_restart, 2) if r["last_resumed_at"] else None,
            "handshake_failures": r["handshake_failures"],
            **_correct(r),
            "close_codes": r["close_codes"],
        }
        back = r["subs_closed"] - r["not_resumed"]
        log(
            f"  {t.name}: storm: {r['subs_closed']} closed, {back} back, the last "
            f"{out['storm']['all_resumed_s']} s after the restart command, lost {r['lost']}"
        )
    return out


def fanout(t: Target, pin: Pinning, p: dict, subscribers: int, rate: float, batch: int, duration: float, log) -> dict:
    """Scenario 2: M subscribers on one deploy; a producer sends `rate` requests/s of `batch` lines."""
    deploy_id, last = t.create_deploy(f"fan-{next(_labels)}")
    with t.subscribers(
        deploy_id, subscribers, last, pin, per_proc=p["per_proc"], concurrency=p["connect_concurrency"]
    ) as subs:
        ready = subs.wait_ready()
        time.sleep(1)
        subs.mark()
        u0 = t.usage()
        drops0 = t.capacity_drops()
        pr = produce(producer_cfg(t, deploy_id, rate=rate, batch=batch, duration=duration), pin, timeout=duration + 300)
        r = subs.report(pr["last_seq"], timeout=p["drain_s"], stall=p["stall_s"])
        u1 = t.usage()
        cpu = _delta(u0, u1)
        # First to last receive, plus one send interval (n sends span n − 1 intervals).
        active = max(r["active_s"] + 1 / rate, 1e-6)
        out = {
            "subscribers": subscribers,
            "connected": ready["connected"],
            "rate_rps": rate,
            "batch": batch,
            "duration_s": duration,
            "offered_eps": subscribers * rate * batch,
            "delivered_events": r["events"],
            "delivered_eps": round(r["events"] / active),
            "frames": r["frames"],
            "active_s": round(active, 2),
            "latency_ms": r["latency_ms"],
            "latency_from_accept_ms": r["latency_from_accept_ms"],
            **_correct(r),
            "expected_events": ready["connected"] * pr["events_ok"],
            "producer": {k: pr[k] for k in ("requests", "events_ok", "statuses", "latency_ms", "late")},
            "server_cpu": cpu,
            "events_per_server_cpu_s": round(r["events"] / cpu["total"]) if cpu["total"] else None,
            "client_cpu_s": round(r["client_cpu_s"], 1),
            "capacity_drop_logs": t.capacity_drops() - drops0,
        }
        log(
            f"  {t.name}: fan-out {subscribers}×{rate * batch:g}/s: {out['delivered_eps']} ev/s, "
            f"p50 {r['latency_ms']['p50']} p99 {r['latency_ms']['p99']} ms, lost {r['lost']}, "
            f"server CPU {cpu['total']} s, client CPU {out['client_cpu_s']} s"
        )
        return out


def ingest(t: Target, pin: Pinning, p: dict, log) -> dict:
    """Scenario 4: single-event POSTs and 1,000-event batches, with a few subscribers watching."""
    deploy_id, last = t.create_deploy(f"ingest-{next(_labels)}")
    out = {}
    with t.subscribers(deploy_id, p["ingest_watchers"], last, pin) as subs:
        subs.wait_ready()
        for name, batch, conns in (("single", 1, p["ingest_connections"]), ("batch", p["ingest_batch"], 2)):
            subs.mark()
            u0 = t.usage()
            pr = produce(
                producer_cfg(t, deploy_id, mode="max", batch=batch, duration=p["ingest_s"], connections=conns),
                pin,
                timeout=p["ingest_s"] + 300,
            )
            r = subs.report(pr["last_seq"], timeout=p["drain_s"], stall=p["stall_s"])
            cpu = _delta(u0, t.usage())
            out[name] = {
                "batch": batch,
                "connections": conns,
                "requests": pr["requests"],
                "rps": round(pr["rps"], 1),
                "eps": round(pr["eps"]),
                "latency_ms": pr["latency_ms"],
                "statuses": pr["statuses"],
                "server_cpu": cpu,
                "watchers": p["ingest_watchers"],
                **_correct(r),
            }
            log(
                f"  {t.name}: ingest {name}: {pr['rps']:.0f} req/s, {pr['eps']:.0f} ev/s, "
                f"p50 {pr['latency_ms']['p50']} p99 {pr['latency_ms']['p99']} ms, watchers lost {r['lost']}"
            )
    return out
