"""bench/client.py against a scripted WebSocket server: the bookkeeping the benchmark's correctness
figures rest on — a refused handshake retried, a fragmented message put together, a gap, a late
(reordered) and a repeated (duplicate) event, a close without a status code, the resume with
`?after=<last seq>`, the server's pings answered — through the real client process and its
JSON-lines protocol. Timing is never asserted."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def frame(kind: str, **fields) -> str:
    return json.dumps({"type": kind, **fields})


def events(*seqs: int) -> str:
    return frame(
        "events",
        events=[
            {
                "seq": s,
                "ts": "2026-01-01T00:00:00.000Z",
                "kind": "log",
                "data": {"line": f"bench t=1700000000.000000 n={s}"},
            }
            for s in seqs
        ],
    )


class Scripted:
    """Refuses the first handshake; the first socket then replays 1–3 in three fragments, goes live and
    sends 5, 4, 4 before closing with an empty CLOSE frame; the next sends 6 and stays open."""

    def __init__(self):
        self.handshakes = 0
        self.afters: list[int] = []
        self.cookies: list[str | None] = []

    def process_request(self, conn, _request):
        self.handshakes += 1
        if self.handshakes == 1:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not yet\n")
        return None

    async def handler(self, ws) -> None:
        after = int(parse_qs(urlsplit(ws.request.path).query)["after"][0])
        self.afters.append(after)
        self.cookies.append(ws.request.headers.get("Cookie"))
        await ws.send(frame("hello", after=after))
        if len(self.afters) == 1:
            text = events(1, 2, 3)
            third = len(text) // 3
            await ws.send([text[:third], text[third : 2 * third], text[2 * third :]])
            await ws.send(frame("live", last_seq=3))
            for seq in (5, 4, 4):
                await ws.send(events(seq))
            ws.protocol.send_close()  # no status code: the client records 1005
            ws.send_data()
            await ws.wait_closed()
        else:
            await ws.send(frame("live", last_seq=5))
            await ws.send(events(6))
            await ws.wait_closed()


async def test_client_checks_every_event_across_a_reconnect():
    server = Scripted()
    async with serve(
        server.handler,
        "127.0.0.1",
        0,
        process_request=server.process_request,
        ping_interval=0.2,  # a client that did not answer would be closed with 1011 within the test
        ping_timeout=0.5,
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        cfg = {
            "url": f"ws://127.0.0.1:{port}/ws/deploys/1/?after={{after}}",
            "headers": {"Cookie": "sessionid=bench"},
            "count": 1,
            "after": 0,
            "ready_timeout": 30,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.client",
            json.dumps(cfg),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

        async def ask(cmd: dict | None = None) -> dict:
            if cmd is not None:
                proc.stdin.write((json.dumps(cmd) + "\n").encode())
                await proc.stdin.drain()
            return json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))

        try:
            ready = await ask()
            assert (ready["event"], ready["connected"], ready["failed"]) == ("ready", 1, 0), ready
            assert ready["handshake_failures"] == 1, ready
            await asyncio.sleep(1.0)  # several server pings
            r = await ask({"cmd": "report", "final_seq": 6, "timeout": 20, "stall": 5})
            assert (await ask({"cmd": "quit"})) == {"ok": "quit"}
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    assert server.afters == [0, 5]  # resumed after the last seq it had
    assert server.cookies == ["sessionid=bench", "sessionid=bench"]
    assert r["live"] == 1 and r["subs_closed"] == 1 and r["not_resumed"] == 0, r
    assert (r["events"], r["gaps"], r["reordered"], r["dups"], r["lost"], r["behind"]) == (5, 1, 1, 1, 0, 0), r
    assert r["close_codes"] == {"1005": 1} and r["unexpected_closes"] == 1 and r["reconnects"] == 1, r
    assert r["frames"] == 9, r  # hello, 1–3, live, 5, 4, 4 | hello, live, 6
    assert r["h_send"]["counts"] and sum(r["h_send"]["counts"].values()) == 2, r  # live and new: 5 and 6
    assert sum(r["h_acc"]["counts"].values()) == 2, r


def test_each_subscriber_gets_its_own_session_counted_across_client_processes():
    """"{n}" in a header is the subscriber's number over all client processes, modulo `sessions`."""
    from bench.client import Client

    cfg = {"url": "ws://h/?after={after}", "headers": {"Cookie": "c=1; sessionid=k{n}", "Origin": "o"}}
    client = Client({**cfg, "count": 3, "first": 4, "sessions": 6})
    assert [client.headers_for(sub) for sub in client.subs] == [
        {"Cookie": "c=1; sessionid=k4", "Origin": "o"},
        {"Cookie": "c=1; sessionid=k5", "Origin": "o"},
        {"Cookie": "c=1; sessionid=k0", "Origin": "o"},
    ]
    shared = Client({**cfg, "count": 2})  # one session unless told otherwise
    assert shared.headers_for(shared.subs[1])["Cookie"] == "c=1; sessionid=k0"
