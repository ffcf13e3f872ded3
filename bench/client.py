"""Subscriber load: many WebSocket subscribers in one process, driven by the orchestrator.

    python -m bench.client '<json config>'

Speaks JSON lines: prints {"event": "ready", …} once every socket is live (or gave up), then answers
commands read from stdin — {"cmd": "mark"}, {"cmd": "report", "final_seq": N, "timeout": s},
{"cmd": "quit"} — one JSON line each. Every subscriber checks its events by seq: a seq above the next
expected one opens a gap (lost unless it arrives later, which counts as reordered); a seq already seen
is a duplicate. Latency is measured twice, on this host's clock: from the producer's send time (in the
log line: "bench t=<unix time> …") and from the event's `ts` (when the server accepted it, ms resolution).

A socket that closes without being asked to reconnects with `?after=<last seq>` and backoff with
jitter, like the browser; a bounded number of attempts, then it gives up and counts as failed.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from datetime import datetime

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.hist import Hist

MAX_ATTEMPTS = 40  # per socket and outage
MISSING_CAP = 100_000  # gap bookkeeping per socket stays bounded


class Sub:
    __slots__ = ("after_initial", "closed_at", "closes", "dead", "idx", "last", "live", "missing", "resumed_at")

    def __init__(self, idx: int, after: int):
        self.idx = idx
        self.last = after
        self.after_initial = after
        self.missing: set[int] = set()
        self.live = False
        self.closes = 0
        self.closed_at = 0.0
        self.resumed_at = 0.0
        self.dead = False


class Client:
    def __init__(self, cfg: dict):
        self.url = cfg["url"]  # contains {after}
        self.headers = cfg.get("headers") or {}
        self.count = int(cfg["count"])
        self.concurrency = int(cfg.get("connect_concurrency", 64))
        self.open_timeout = float(cfg.get("open_timeout", 60))
        self.ready_timeout = float(cfg.get("ready_timeout", 600))
        self.subs = [Sub(i, int(cfg.get("after", 0))) for i in range(self.count)]
        self.stopping = False
        self.sem = asyncio.Semaphore(self.concurrency)
        self.ts_cache: dict[str, float] = {}
        self.connect_hist = Hist()
        self.ready_left = self.count
        self.ready = asyncio.Event()
        self.initial_failed = 0
        self.failed = 0  # gave up after MAX_ATTEMPTS
        self.handshake_failures = 0
        self.reconnects = 0
        self.unexpected_closes = 0
        self.close_codes: dict[str, int] = {}
        self.last_event_t = time.time()
        self.reset_window()

    # ------------------------------------------------------------------ measurement window
    def reset_window(self, track_seqs: bool = False) -> None:
        self.h_send = Hist()  # producer send → receive
        self.h_acc = Hist()  # server accepted (ts) → receive
        self.events = 0
        self.frames = 0
        self.dups = 0
        self.reordered = 0
        self.gaps = 0
        self.window_t0 = time.time()
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.cpu0 = time.process_time()
        self.seq_lat: dict[int, list] | None = {} if track_seqs else None

    def ts_of(self, ts: str) -> float:
        value = self.ts_cache.get(ts)
        if value is None:
            if len(self.ts_cache) > 50_000:
                self.ts_cache.clear()
            value = datetime.fromisoformat(ts).timestamp()
            self.ts_cache[ts] = value
        return value

    # ------------------------------------------------------------------ frames
    def on_frame(self, sub: Sub, raw, now: float) -> None:
        msg = json.loads(raw)
        kind = msg.get("type")
        self.frames += 1
        if kind == "events":
            for ev in msg["events"]:
                self.on_event(sub, ev, now)
        elif kind == "live":
            if not sub.live:
                sub.live = True
                if sub.closes:
                    sub.resumed_at = now
                else:
                    self.ready_left -= 1
                    if self.ready_left <= 0:
                        self.ready.set()

    def on_event(self, sub: Sub, ev: dict, now: float) -> None:
        seq = ev["seq"]
        last = sub.last
        if seq == last + 1:
            sub.last = seq
        elif seq > last + 1:
            self.gaps += 1
            if len(sub.missing) < MISSING_CAP:
                sub.missing.update(range(last + 1, min(seq, last + 1 + MISSING_CAP)))
            sub.last = seq
        elif seq in sub.missing:
            sub.missing.discard(seq)
            self.reordered += 1
            return
        else:
            self.dups += 1
            return
        self.events += 1
        self.last_event_t = self.last_t = now
        if self.first_t is None:
            self.first_t = now
        if not sub.live:
            return  # replayed on (re)connect: checked for loss and order, but not a live latency
        data = ev.get("data") or {}
        line = data.get("line")
        if line and line.startswith("bench t="):
            ms = (now - float(line[8:25])) * 1000
            self.h_send.add(ms)
            if self.seq_lat is not None:
                slot = self.seq_lat.get(seq)
                if slot is None:
                    self.seq_lat[seq] = [1, ms]
                else:
                    slot[0] += 1
                    if ms > slot[1]:
                        slot[1] = ms
        ts = ev.get("ts")
        if ts:
            self.h_acc.add((now - self.ts_of(ts)) * 1000)

    # ------------------------------------------------------------------ sockets
    async def run_sub(self, sub: Sub) -> None:
        attempts = 0
        initial = True
        while not self.stopping:
            t0 = time.monotonic()
            try:
                if initial:
                    await self.sem.acquire()
                try:
                    ws = await asyncio.wait_for(
                        connect(
                            self.url.format(after=sub.last),
                            additional_headers=self.headers,
                            compression=None,
                            ping_interval=None,
                            max_size=2**24,
                            open_timeout=None,
                            close_timeout=2,
                        ),
                        self.open_timeout,
                    )
                finally:
                    if initial:
                        self.sem.release()
                if initial:
                    self.connect_hist.add((time.monotonic() - t0) * 1000)
                initial = False
                attempts = 0
                try:
                    async for raw in ws:
                        self.on_frame(sub, raw, time.time())
                    code = ws.close_code
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd else 1006
                if self.stopping:
                    return
                # The server (or a proxy) ended the socket: a restart, a timeout, a drop.
                self.unexpected_closes += 1
                self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1
                sub.live = False
                sub.closes += 1
                sub.closed_at = time.time()
                self.reconnects += 1
                await asyncio.sleep(random.uniform(0.05, 0.5))
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError, ConnectionClosed):
                if self.stopping:
                    return
                self.handshake_failures += 1
                attempts += 1
                if attempts >= MAX_ATTEMPTS:
                    self.failed += 1
                    sub.dead = True
                    if initial:
                        self.initial_failed += 1
                        self.ready_left -= 1
                        if self.ready_left <= 0:
                            self.ready.set()
                    return
                # Full jitter exponential backoff, capped at 3 s (what the browser does, roughly).
                await asyncio.sleep(random.uniform(0, min(3.0, 0.1 * 2**attempts)))

    # ------------------------------------------------------------------ commands
    def stats(self, final_seq: int | None) -> dict:
        lost = 0  # holes below what a socket has received: skipped for good
        behind = 0  # events not received yet when the wait ended (a backlog, not a hole)
        for sub in self.subs:
            if not sub.live:
                continue  # counted as failed or not resumed instead
            lost += len(sub.missing)
            if final_seq is not None and sub.last < final_seq:
                behind += final_seq - sub.last
        live = sum(1 for s in self.subs if s.live)
        resumed = [s.resumed_at for s in self.subs if s.closes and s.live]
        closed = [s for s in self.subs if s.closes]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out = {
            "subscribers": self.count,
            "live": live,
            "window_s": time.time() - self.window_t0,
            "events": self.events,
            "frames": self.frames,
            "dups": self.dups,
            "reordered": self.reordered,
            "gaps": self.gaps,
            "lost": lost,
            "behind": behind,
            "failed": self.failed,
            "handshake_failures": self.handshake_failures,
            "reconnects": self.reconnects,
            "unexpected_closes": self.unexpected_closes,
            "close_codes": self.close_codes,
            "h_send": self.h_send.to_json(),
            "h_acc": self.h_acc.to_json(),
            "client_cpu_s": time.process_time() - self.cpu0,
            "maxrss_kib": usage.ru_maxrss,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "subs_closed": len(closed),
            "last_resumed_at": max(resumed) if resumed else None,
            "not_resumed": sum(1 for s in closed if not s.live),
        }
        if self.seq_lat is not None:
            out["seq_lat"] = {str(k): v for k, v in self.seq_lat.items()}
        return out

    async def report(self, final_seq: int | None, timeout: float, stall: float = 8.0) -> dict:
        """Wait until every socket has everything up to final_seq, at most `timeout` s, and give up
        earlier once nothing has arrived for `stall` s while every socket is live (what is missing then
        is not coming)."""
        deadline = time.monotonic() + timeout
        while final_seq is not None and time.monotonic() < deadline:
            alive = [s for s in self.subs if not s.dead]
            if all(s.live and s.last >= final_seq and not s.missing for s in alive):
                break
            if all(s.live for s in alive) and time.time() - self.last_event_t > stall:
                break
            await asyncio.sleep(0.05)
        return self.stats(final_seq)

    async def commands(self, tasks: list[asyncio.Task]) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                cmd = {"cmd": "quit"}
            else:
                cmd = json.loads(line)
            name = cmd["cmd"]
            if name == "mark":
                self.reset_window(bool(cmd.get("track_seqs")))
                emit({"ok": "mark"})
            elif name == "report":
                emit(
                    {
                        "ok": "report",
                        **await self.report(
                            cmd.get("final_seq"), float(cmd.get("timeout", 30)), float(cmd.get("stall", 5))
                        ),
                    }
                )
            elif name == "quit":
                self.stopping = True
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                emit({"ok": "quit"})
                return

    async def main(self) -> None:
        started = time.monotonic()
        tasks = [asyncio.create_task(self.run_sub(s)) for s in self.subs]
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=self.ready_timeout)
        except TimeoutError:
            # The ramp window is over: sockets still not subscribed stop trying and count as failed,
            # so the hold and the later scenarios measure a fixed population.
            for sub, task in zip(self.subs, tasks, strict=True):
                if not sub.live and not sub.closes and not sub.dead:
                    task.cancel()
                    sub.dead = True
                    self.failed += 1
                    self.initial_failed += 1
        emit(
            {
                "event": "ready",
                "connected": sum(1 for s in self.subs if s.live),
                "failed": self.initial_failed,
                "handshake_failures": self.handshake_failures,
                "ramp_s": time.monotonic() - started,
                "connect_ms": self.connect_hist.summary(),
            }
        )
        await self.commands(tasks)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, need)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    raise_nofile(int(cfg["count"]) + 1024)
    asyncio.run(Client(cfg).main())


if __name__ == "__main__":
    main()
