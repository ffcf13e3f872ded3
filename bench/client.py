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

The client is the load generator, on one core, so what it spends per frame bounds every wall-clock
figure: sockets are picows (frames parsed in C, one callback per frame) on uvloop, payloads are parsed
with orjson, and a payload's decoded form is kept for the next subscriber that receives the same bytes
(a broadcast is one payload to every socket) — each subscriber still runs its own seq checks and
latencies on every frame. `python -m bench.micro client` measures it against the earlier client.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import socket
import sys
import time
from datetime import datetime

import orjson
import uvloop
from picows import WSCloseCode, WSError, WSListener, WSMsgType, WSProtocolError, WSTransport, ws_connect

from bench.hist import Hist

MAX_ATTEMPTS = 40  # per socket and outage
MISSING_CAP = 100_000  # gap bookkeeping per socket stays bounded
MAX_MESSAGE = 2**24  # bytes, as the earlier client's max_size
CLOSE_TIMEOUT = 2.0  # s
DECODED_CAP = 32 * 2**20  # bytes of payloads whose decoded form is kept; then the cache starts over

LIVE = "live"  # a decoded `live` frame; any other decoded frame is a tuple of (seq, sent, accepted)
OTHER: tuple = ()  # hello, watchers, …: counted as frames, nothing else
DATA_TYPES = (WSMsgType.TEXT, WSMsgType.BINARY)


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


class Attempt(WSListener):
    """One connection attempt of one subscriber: hands each complete message to the client.

    An attempt given up on (a timeout, a cancelled task) is abandoned: its socket is closed at once,
    also mid-handshake, and feeds nothing more, so only one attempt per subscriber ever counts."""

    def __init__(self, client: Client, sub: Sub):
        self.client = client
        self.sub = sub
        self.active = True
        self.sock: socket.socket | None = None
        self.transport: WSTransport | None = None
        self.close_code = 1006  # no CLOSE frame received (the earlier client's convention)
        self.parts: list[bytes] | None = None  # a fragmented message being put together
        self.parts_size = 0

    def factory(self, _request, _response) -> Attempt:
        return self

    def make_socket(self, url) -> socket.socket:
        """picows' socket_factory: an unconnected socket, which picows connects. Kept so that abandon()
        can close an attempt that has no WSTransport yet (picows hands that over after the handshake)."""
        self.sock = socket.socket(socket.AF_INET6 if ":" in url.host else socket.AF_INET, socket.SOCK_STREAM)
        return self.sock

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if not self.active:
            transport.disconnect()

    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        if not self.active:
            return
        kind = frame.msg_type
        if kind in DATA_TYPES and frame.fin and self.parts is None:
            self.client.on_frame(self.sub, frame.get_payload_as_bytes(), time.time())
        elif kind is WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            transport.send_close(frame.get_close_code())
            # The server closes the TCP connection after the echo; close it here if it has not (2 s, as
            # the earlier client's close_timeout).
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.disconnect)
        elif kind in DATA_TYPES or kind is WSMsgType.CONTINUATION:
            self.fragment(frame)
        # PING is answered by picows itself; PONG needs nothing.

    def fragment(self, frame) -> None:
        if (frame.msg_type is WSMsgType.CONTINUATION) != (self.parts is not None):
            raise WSProtocolError(WSCloseCode.PROTOCOL_ERROR, "unexpected continuation frame")
        if self.parts is None:
            self.parts, self.parts_size = [], 0
        self.parts.append(frame.get_payload_as_bytes())
        self.parts_size += frame.payload_size
        if self.parts_size > MAX_MESSAGE:
            raise WSProtocolError(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        if frame.fin:
            raw, self.parts = b"".join(self.parts), None
            self.client.on_frame(self.sub, raw, time.time())

    def abandon(self) -> None:
        self.active = False
        if self.transport is not None:
            self.transport.disconnect()
        elif self.sock is not None and self.sock.fileno() != -1:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # connected: its transport reads EOF and closes it
            except OSError:
                self.sock.close()  # not connected: nothing else owns it


class Client:
    def __init__(self, cfg: dict):
        self.url = cfg["url"]  # contains {after}
        self.headers = cfg.get("headers") or {}
        # "{n}" in a header value stands for the subscriber's number (counted over every client
        # process, from `first`) modulo `sessions`: one session cookie per socket, as distinct browsers.
        self.first = int(cfg.get("first", 0))
        self.sessions = int(cfg.get("sessions", 1))
        self.count = int(cfg["count"])
        self.concurrency = int(cfg.get("connect_concurrency", 64))
        self.open_timeout = float(cfg.get("open_timeout", 60))
        self.ready_timeout = float(cfg.get("ready_timeout", 600))
        self.subs = [Sub(i, int(cfg.get("after", 0))) for i in range(self.count)]
        self.stopping = False
        self.sem = asyncio.Semaphore(self.concurrency)
        self.ts_cache: dict[str, float] = {}
        self.decoded: dict[bytes, object] = {}
        self.decoded_bytes = 0
        self.connect_hist = Hist()
        self.ready_left = self.count
        self.subscribed = 0  # went live in the ramp (one may close again before the ready report is out)
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
    def decode(self, raw: bytes):
        """LIVE, OTHER, or per event (seq, producer send time or None, server accept time or None)."""
        msg = orjson.loads(raw)
        kind = msg.get("type")
        if kind == "live":
            return LIVE
        if kind != "events":
            return OTHER
        out = []
        for ev in msg["events"]:
            data = ev.get("data")
            line = data.get("line") if isinstance(data, dict) else None
            sent = float(line[8:25]) if isinstance(line, str) and line.startswith("bench t=") else None
            ts = ev.get("ts")
            out.append((ev["seq"], sent, self.ts_of(ts) if ts else None))
        return tuple(out)

    def on_frame(self, sub: Sub, raw: bytes, now: float) -> None:
        decoded = self.decoded.get(raw)
        if decoded is None:
            decoded = self.decode(raw)
            if self.decoded_bytes > DECODED_CAP:
                self.decoded.clear()
                self.decoded_bytes = 0
            self.decoded[raw] = decoded
            self.decoded_bytes += len(raw)
        self.frames += 1
        if decoded is LIVE:
            if not sub.live:
                sub.live = True
                if sub.closes:
                    sub.resumed_at = now
                else:
                    self.subscribed += 1
                    self.ready_left -= 1
                    if self.ready_left <= 0:
                        self.ready.set()
            return
        for seq, sent, accepted in decoded:
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
                continue
            else:
                self.dups += 1
                continue
            self.events += 1
            self.last_event_t = self.last_t = now
            if self.first_t is None:
                self.first_t = now
            if not sub.live:
                continue  # replayed on (re)connect: checked for loss and order, but not a live latency
            if sent is not None:
                ms = (now - sent) * 1000
                self.h_send.add(ms)
                if self.seq_lat is not None:
                    slot = self.seq_lat.get(seq)
                    if slot is None:
                        self.seq_lat[seq] = [1, ms]
                    else:
                        slot[0] += 1
                        if ms > slot[1]:
                            slot[1] = ms
            if accepted is not None:
                self.h_acc.add((now - accepted) * 1000)

    # ------------------------------------------------------------------ sockets
    def headers_for(self, sub: Sub) -> dict:
        n = str((self.first + sub.idx) % self.sessions)
        return {name: value.replace("{n}", n) for name, value in self.headers.items()}

    async def open(self, attempt: Attempt, after: int, headers: dict) -> WSTransport:
        try:
            transport, listener = await asyncio.wait_for(
                ws_connect(
                    attempt.factory,
                    self.url.format(after=after),
                    extra_headers=headers,
                    max_frame_size=MAX_MESSAGE,
                    websocket_handshake_timeout=self.open_timeout,
                    enable_auto_ping=False,
                    socket_factory=attempt.make_socket,
                ),
                self.open_timeout,
            )
        except BaseException:
            attempt.abandon()
            raise
        if listener is None:  # picows returns the transport of a connection lost mid-handshake
            raise ConnectionResetError("connection closed during the handshake")
        return transport

    async def run_sub(self, sub: Sub) -> None:
        attempts = 0
        initial = True
        while not self.stopping:
            t0 = time.monotonic()
            attempt = Attempt(self, sub)
            try:
                if initial:
                    await self.sem.acquire()
                try:
                    transport = await self.open(attempt, sub.last, self.headers_for(sub))
                finally:
                    if initial:
                        self.sem.release()
                if initial:
                    self.connect_hist.add((time.monotonic() - t0) * 1000)
                initial = False
                attempts = 0
                try:
                    await transport.wait_disconnected()
                except WSProtocolError:
                    pass  # picows closed the socket over a protocol error: an unexpected close all the same
                if self.stopping:
                    return
                # The server (or a proxy) ended the socket: a restart, a timeout, a drop.
                code = attempt.close_code
                self.unexpected_closes += 1
                self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1
                sub.live = False
                sub.closes += 1
                sub.closed_at = time.time()
                self.reconnects += 1
                await asyncio.sleep(random.uniform(0.05, 0.5))
            except (OSError, WSError, TimeoutError):
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
            finally:
                attempt.abandon()  # a cancelled task (quit, the ramp's end) leaves no socket feeding `sub`

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
        stdin, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
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
                stdin.close()
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
                "connected": self.subscribed,
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
    uvloop.run(Client(cfg).main())


if __name__ == "__main__":
    main()
