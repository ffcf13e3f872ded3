"""Start and drive the load processes (subscriber clients, producers), pinned to the client core."""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.hist import Hist

ROOT = Path(__file__).resolve().parents[1]


class Pinning:
    """Which cores the servers and the load get. With ≥ 2 cores the load takes the last one."""

    def __init__(self, mode: str = "auto"):
        cores = sorted(os.sched_getaffinity(0))
        self.all = cores
        if mode == "auto" and len(cores) >= 2:
            self.server, self.load = cores[:-1], cores[-1:]
        else:
            self.server, self.load = cores, cores
        self.mode = mode if len(cores) >= 2 else "none"

    def apply_to_self(self) -> None:
        """The orchestrator and every server it starts (children inherit) run on the server cores."""
        os.sched_setaffinity(0, set(self.server))

    def prefix(self) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, self.load))] if self.mode == "auto" else []

    def describe(self) -> dict:
        return {"mode": self.mode, "server_cores": self.server, "load_cores": self.load}


class ClientProc:
    """One bench.client process and its JSON-lines conversation. `root` is the tree whose bench/ it
    runs (bench.micro client points it at an earlier commit's, to compare clients)."""

    def __init__(self, cfg: dict, pinning: Pinning, root: Path = ROOT):
        self.proc = subprocess.Popen(
            [*pinning.prefix(), sys.executable, "-m", "bench.client", json.dumps(cfg)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def read(self, timeout: float) -> dict:
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"client {self.proc.pid} said nothing for {timeout:.0f} s") from None
        if msg is None:
            raise RuntimeError(f"client {self.proc.pid} exited ({self.proc.poll()})")
        return msg

    def send(self, cmd: dict) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Subscribers:
    """N subscribers on one deploy, split over client processes of at most `per_proc` sockets each."""

    def __init__(
        self,
        url: str,
        headers: dict,
        count: int,
        after: int,
        pinning: Pinning,
        per_proc: int = 5000,
        concurrency: int = 64,
        ready_timeout: float = 600,
        sessions: int = 1,
    ):
        """`sessions`: how many session cookies "{n}" in a header value stands for (bench/client.py)."""
        nprocs = max(1, math.ceil(count / per_proc))
        sizes = [count // nprocs + (1 if i < count % nprocs else 0) for i in range(nprocs)]
        self.count = count
        self.procs = [
            ClientProc(
                {
                    "url": url,
                    "headers": headers,
                    "sessions": sessions,
                    "first": sum(sizes[:i]),
                    "count": n,
                    "after": after,
                    "ready_timeout": max(10, ready_timeout - 20),
                    "connect_concurrency": max(1, concurrency // nprocs),
                },
                pinning,
            )
            for i, n in enumerate(sizes)
            if n
        ]
        self.ready_timeout = ready_timeout

    def wait_ready(self) -> dict:
        t0 = time.monotonic()
        replies = [p.read(self.ready_timeout) for p in self.procs]
        return {
            "connected": sum(r["connected"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "handshake_failures": sum(r["handshake_failures"] for r in replies),
            "ramp_s": max(r["ramp_s"] for r in replies),
            "wait_s": time.monotonic() - t0,
            "connect_ms_p99_worst": max((r["connect_ms"]["p99"] or 0) for r in replies),
        }

    def mark(self, track_seqs: bool = False) -> None:
        for p in self.procs:
            p.send({"cmd": "mark", "track_seqs": track_seqs})
        for p in self.procs:
            p.read(60)

    def report(self, final_seq: int | None, timeout: float = 60, stall: float = 5.0) -> dict:
        for p in self.procs:
            p.send({"cmd": "report", "final_seq": final_seq, "timeout": timeout, "stall": stall})
        replies = [p.read(timeout + 60) for p in self.procs]
        out: dict = {}
        for key in (
            "live",
            "events",
            "frames",
            "dups",
            "reordered",
            "gaps",
            "lost",
            "behind",
            "failed",
            "handshake_failures",
            "reconnects",
            "unexpected_closes",
            "subs_closed",
            "not_resumed",
            "client_cpu_s",
            "subscribers",
        ):
            out[key] = sum(r[key] for r in replies)
        out["window_s"] = max(r["window_s"] for r in replies)
        out["close_codes"] = {}
        for r in replies:
            for code, n in r["close_codes"].items():
                out["close_codes"][code] = out["close_codes"].get(code, 0) + n
        firsts = [r["first_t"] for r in replies if r["first_t"]]
        lasts = [r["last_t"] for r in replies if r["last_t"]]
        out["active_s"] = (max(lasts) - min(firsts)) if firsts else 0.0
        resumed = [r["last_resumed_at"] for r in replies if r["last_resumed_at"]]
        out["last_resumed_at"] = max(resumed) if resumed else None
        h_send, h_acc = Hist(), Hist()
        for r in replies:
            h_send.merge(Hist.from_json(r["h_send"]))
            h_acc.merge(Hist.from_json(r["h_acc"]))
        out["latency_ms"] = h_send.summary()
        out["latency_from_accept_ms"] = h_acc.summary()
        if any("seq_lat" in r for r in replies):
            merged: dict[int, list] = {}
            for r in replies:
                for seq, (n, worst) in r.get("seq_lat", {}).items():
                    slot = merged.setdefault(int(seq), [0, 0.0])
                    slot[0] += n
                    slot[1] = max(slot[1], worst)
            out["per_seq"] = merged
        return out

    def close(self) -> None:
        for p in self.procs:
            try:
                if p.proc.poll() is None:
                    p.send({"cmd": "quit"})
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 30
        for p in self.procs:
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()

    def __enter__(self) -> Subscribers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        for p in self.procs:
            p.kill()


def produce(cfg: dict, pinning: Pinning, timeout: float) -> dict:
    """Run one producer process to completion and return its figures."""
    proc = subprocess.run(
        [*pinning.prefix(), sys.executable, "-m", "bench.producer", json.dumps(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"producer failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Background:
    """A producer running in the background (reconnect storm): start(), then result()."""

    def __init__(self, cfg: dict, pinning: Pinning):
        self.proc = subprocess.Popen(
            [*pinning.prefix(), sys.executable, "-m", "bench.producer", json.dumps(cfg)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def result(self, timeout: float) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"producer failed: {err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
