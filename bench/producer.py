"""Event producer: POSTs log events to an ingest API over keep-alive HTTP/1.1, paced or flat out.

    python -m bench.producer '<json config>'

Config: host, port, path (…/events/), headers, mode "rate" (requests/s for `duration` s) or "max"
(as fast as `connections` allow, for `duration` s or `max_requests`), batch (events per request),
line_bytes. Each log line starts "bench t=<unix time> " (the send time, for the subscribers'
latency), padded to line_bytes. Prints one JSON line: requests, statuses, latency, seq range.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.hist import Hist


def line(n: int, size: int) -> str:
    head = f"bench t={time.time():.6f} n={n} "
    return head + "x" * max(0, size - len(head))


class Producer:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.batch = int(cfg.get("batch", 1))
        self.size = int(cfg.get("line_bytes", 120))
        self.hist = Hist()
        self.statuses: dict[str, int] = {}
        self.errors = 0
        self.requests = 0
        self.events_ok = 0
        self.first_seq: int | None = None
        self.last_seq = 0
        self.n = 0
        self.late = 0
        head = [
            f"POST {cfg['path']} HTTP/1.1",
            f"Host: {cfg['host']}:{cfg['port']}",
            "Content-Type: application/json",
            "Connection: keep-alive",
        ]
        head += [f"{k}: {v}" for k, v in (cfg.get("headers") or {}).items()]
        self.head = "\r\n".join(head)

    def body(self) -> bytes:
        events = []
        for _ in range(self.batch):
            self.n += 1
            events.append({"kind": "log", "data": {"line": line(self.n, self.size), "stream": "stdout"}})
        return json.dumps({"events": events}, separators=(",", ":")).encode()

    async def request(self, conn) -> None:
        reader, writer = conn
        body = self.body()
        t0 = time.perf_counter()
        writer.write(f"{self.head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for h in lines[1:]:
            if ":" in h:
                k, v = h.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = b""
        self.hist.add((time.perf_counter() - t0) * 1000)
        self.requests += 1
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status == 202:
            answer = json.loads(data)
            self.events_ok += self.batch
            self.last_seq = max(self.last_seq, answer["last_seq"])
            if self.first_seq is None or answer["first_seq"] < self.first_seq:
                self.first_seq = answer["first_seq"]
        if headers.get("connection", "").lower() == "close":
            raise ConnectionResetError("server closed the keep-alive connection")

    async def open(self, patience: float = 60.0):
        """Connect, retrying while the server restarts (bounded: `patience` seconds)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return await asyncio.open_connection(self.cfg["host"], self.cfg["port"])
            except OSError as exc:
                self.errors += 1
                self.statuses[type(exc).__name__] = self.statuses.get(type(exc).__name__, 0) + 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def worker(self, next_slot, deadline: float) -> None:
        conn = await self.open()
        try:
            while True:
                slot = next_slot()
                if slot is None:
                    return
                if slot > 0:
                    delay = slot - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -0.05:
                        self.late += 1
                if time.monotonic() > deadline:
                    return
                try:
                    await self.request(conn)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    self.errors += 1
                    self.statuses[type(exc).__name__] = self.statuses.get(type(exc).__name__, 0) + 1
                    conn[1].close()
                    await asyncio.sleep(0.05)
                    conn = await self.open()
        finally:
            conn[1].close()

    async def main(self) -> dict:
        cfg = self.cfg
        duration = float(cfg["duration"])
        max_requests = int(cfg.get("max_requests") or 10**9)
        start = time.monotonic() + 0.05
        deadline = start + duration + float(cfg.get("grace", 10))
        issued = 0
        rate = float(cfg.get("rate") or 0)

        def next_slot():
            nonlocal issued
            if issued >= max_requests:
                return None
            if rate:
                t = start + issued / rate
                if t > start + duration:
                    return None
            else:
                if time.monotonic() > start + duration:
                    return None
                t = 0
            issued += 1
            return t

        workers = int(cfg.get("connections", 1))
        t0 = time.monotonic()
        await asyncio.gather(*(self.worker(next_slot, deadline) for _ in range(workers)))
        elapsed = time.monotonic() - t0
        return {
            "requests": self.requests,
            "events_ok": self.events_ok,
            "errors": self.errors,
            "statuses": self.statuses,
            "elapsed_s": elapsed,
            "late": self.late,
            "rps": self.requests / elapsed if elapsed else 0,
            "eps": self.events_ok / elapsed if elapsed else 0,
            "latency_ms": self.hist.summary(),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "cpu_s": time.process_time(),
        }


def main() -> None:
    cfg = json.loads(sys.argv[1])
    result = asyncio.run(Producer(cfg).main())
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
