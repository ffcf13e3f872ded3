"""A deploy-socket client that behaves like the browser: follows /ws/deploys/<id>/?after=N, pings every
couple of seconds, reconnects with after=<last seq> when the socket drops, and keeps every event it
receives (no de-duplication, so a test can check that each arrived exactly once)."""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


class DeployFollower:
    def __init__(self, stack, cookie: str, deploy_id: int, ping_every: float = 2.0):
        self.stack, self.cookie, self.deploy_id, self.ping_every = stack, cookie, deploy_id, ping_every
        self.events: list[dict] = []
        self.last_seq = 0
        self.connects = 0
        self.drops: list[str] = []
        self.final_status: str | None = None

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events]

    async def wait_for_events(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.events)} events after {timeout}s (wanted {count})")
            await asyncio.sleep(0.05)

    async def run(self, timeout: float = 90) -> DeployFollower:
        deadline = time.monotonic() + timeout
        while self.final_status is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"deploy {self.deploy_id} not finished on the socket after {timeout}s; "
                                     f"last seq {self.last_seq}, drops {self.drops}")
            try:
                await self._session(deadline)
            except (TimeoutError, ConnectionClosed, InvalidHandshake, OSError) as exc:
                self.drops.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.3)  # the browser backs off too; a restarted daphne needs a moment
        return self

    async def _session(self, deadline: float) -> None:
        url = self.stack.ws_url(f"/ws/deploys/{self.deploy_id}/?after={self.last_seq}")
        async with connect(url, additional_headers=self.stack.ws_headers(self.cookie), open_timeout=10,
                           ping_interval=None, max_size=None) as ws:
            self.connects += 1
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=self.ping_every)
                except TimeoutError:
                    await ws.send(json.dumps({"action": "ping"}))
                    continue
                frame = json.loads(raw)
                if frame.get("type") == "error":
                    raise AssertionError(f"error frame: {frame}")
                if frame.get("type") != "events":
                    continue
                for event in frame["events"]:
                    self.events.append(event)
                    self.last_seq = max(self.last_seq, event["seq"])
                    if event["kind"] == "status" and event["data"].get("status") in FINISHED:
                        self.final_status = event["data"]["status"]
                if self.final_status:
                    return


def assert_exactly_once(follower: DeployFollower, stored: int) -> None:
    """Every stored event arrived, in order, and none twice."""
    seqs = follower.seqs
    duplicates = sorted({s for s in seqs if seqs.count(s) > 1})
    assert not duplicates, f"duplicated seqs {duplicates[:20]}"
    assert seqs == list(range(1, stored + 1)), (
        f"got {len(seqs)} events, stored {stored}; missing {sorted(set(range(1, stored + 1)) - set(seqs))[:20]}"
    )
