"""The ceiling: a bare asyncio `websockets` broadcast server, one WebSocket process per core.

    python -m bench.peers.ceiling.server --ws-port P --http-port H --workers N

No Django, no Redis, no nginx, no database. The main process takes the same producer protocol as
Herald (POST /api/v1/deploys/, POST /api/v1/deploys/<id>/events/ with {"events": [...]}), numbers
the events, encodes one frame per batch and relays it to the worker processes over socket pairs; each
worker accepts WebSockets on the shared port (SO_REUSEPORT), keeps the history in memory (so
`?after=N` resumes) and writes the frame to its subscribers with websockets' broadcast(). It sends the
same hello → events → live sequence as Herald. POST /control/drop closes every socket (code 1012), as
a restart would, to measure a reconnect storm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve

PAGE = 1000


def now_iso() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------- relay framing
async def send_msg(writer: asyncio.StreamWriter, header: dict, payload: bytes = b"") -> None:
    head = dumps(header).encode()
    writer.write(struct.pack("!II", len(head), len(payload)) + head + payload)
    await writer.drain()


async def read_msg(reader: asyncio.StreamReader) -> tuple[dict, bytes]:
    sizes = await reader.readexactly(8)
    hlen, plen = struct.unpack("!II", sizes)
    head = json.loads(await reader.readexactly(hlen))
    return head, await reader.readexactly(plen) if plen else b""


# ---------------------------------------------------------------------------- worker (WebSockets)
class Worker:
    def __init__(self):
        self.subs: dict[int, set] = {}
        self.history: dict[int, list[tuple[int, int, bytes]]] = {}  # deploy → [(first, last, frame)]
        self.last: dict[int, int] = {}
        self.all = set()

    def replay(self, deploy_id: int, after: int) -> list[bytes]:
        frames = []
        for first, last, frame in self.history.get(deploy_id, []):
            if last <= after:
                continue
            if first > after:
                frames.append(frame)
            else:  # a batch that straddles the resume point: send only its tail
                events = [e for e in json.loads(frame)["events"] if e["seq"] > after]
                frames.append(dumps({"type": "events", "events": events}).encode())
        return frames

    async def handler(self, ws) -> None:
        url = urlsplit(ws.request.path)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) != 3 or parts[:2] != ["ws", "deploys"] or not parts[2].isdigit():
            await ws.close(4404, "no such socket")
            return
        deploy_id = int(parts[2])
        after = int(parse_qs(url.query).get("after", ["0"])[-1])
        if deploy_id not in self.last:
            await ws.close(4404, "no such deploy")
            return
        await ws.send(
            dumps({"type": "hello", "deploy": {"id": deploy_id, "last_seq": self.last[deploy_id]}, "after": after})
        )
        # Everything between here and joining the subscriber set runs without an await: no seam.
        for frame in self.replay(deploy_id, after):
            ws.protocol.send_text(frame)
        ws.send_data()
        group = self.subs.setdefault(deploy_id, set())
        group.add(ws)
        self.all.add(ws)
        try:
            await ws.send(dumps({"type": "live", "last_seq": self.last[deploy_id]}))
            await ws.wait_closed()
        finally:
            group.discard(ws)
            self.all.discard(ws)

    async def relay(self, sock: socket.socket) -> None:
        reader, _writer = await asyncio.open_connection(sock=sock)
        while True:
            head, frame = await read_msg(reader)
            if head["op"] == "events":
                d = head["deploy"]
                self.history.setdefault(d, []).append((head["first"], head["last"], frame))
                self.last[d] = head["last"]
                group = self.subs.get(d)
                if group:
                    broadcast(group, frame, text=True)
            elif head["op"] == "deploy":
                self.last[head["deploy"]] = 0
            elif head["op"] == "drop":
                # Close every socket at once, as a dying process would, without stalling the relay.
                self.closing = [asyncio.create_task(ws.close(1012, "restart")) for ws in list(self.all)]

    async def main(self, port: int, sock: socket.socket) -> None:
        async with serve(
            self.handler,
            "127.0.0.1",
            port,
            reuse_port=True,
            # asyncio's default accept backlog (100) overflowed when all sockets came back at once, and
            # the dropped SYNs' retransmits (1, 3, 7, … s) set the storm's time: 1024, as Herald's daphnes.
            backlog=1024,
            compression=None,
            ping_interval=20,
            max_size=2**16,
            close_timeout=1,
        ):
            await self.relay(sock)


# ---------------------------------------------------------------------------- main (HTTP ingest)
class Main:
    def __init__(self, relays: list[socket.socket]):
        self.relays = relays
        self.writers: list[asyncio.StreamWriter] = []
        self.last: dict[int, int] = {}
        self.next_id = 1

    async def fanout(self, header: dict, payload: bytes = b"") -> None:
        for w in self.writers:
            await send_msg(w, header, payload)

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        parts = [p for p in urlsplit(path).path.split("/") if p]
        if method != "POST":
            return 405, {"error": "POST only"}
        if parts == ["api", "v1", "deploys"]:
            deploy_id, self.next_id = self.next_id, self.next_id + 1
            self.last[deploy_id] = 0
            await self.fanout({"op": "deploy", "deploy": deploy_id})
            return 201, {"id": deploy_id, "last_seq": 0}
        if len(parts) == 5 and parts[:3] == ["api", "v1", "deploys"] and parts[4] == "events":
            deploy_id = int(parts[3])
            if deploy_id not in self.last:
                return 404, {"error": "no such deploy"}
            items = json.loads(body)["events"]
            ts = now_iso()
            first = self.last[deploy_id] + 1
            events = [
                {"seq": first + i, "ts": ts, "kind": it["kind"], "data": it["data"]} for i, it in enumerate(items)
            ]
            self.last[deploy_id] = last = first + len(items) - 1
            frame = dumps({"type": "events", "events": events}).encode()
            await self.fanout({"op": "events", "deploy": deploy_id, "first": first, "last": last}, frame)
            return 202, {"first_seq": first, "last_seq": last}
        if parts == ["control", "drop"]:
            await self.fanout({"op": "drop"})
            return 200, {"dropped": True}
        return 404, {"error": "not found"}

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for h in lines[1:]:
                    if h.lower().startswith("content-length:"):
                        length = int(h.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                status, answer = await self.handle(method, path, body)
                data = dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main(self, port: int) -> None:
        for sock in self.relays:
            _reader, writer = await asyncio.open_connection(sock=sock)
            self.writers.append(writer)
        server = await asyncio.start_server(self.http, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    relays, children = [], []
    for _ in range(args.workers):
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            mine.close()
            for other in relays:
                other.close()
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            asyncio.run(Worker().main(args.ws_port, theirs))
            os._exit(0)
        theirs.close()
        relays.append(mine)
        children.append(pid)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(Main(relays).main(args.http_port))
    finally:
        stop()


if __name__ == "__main__":
    main()
