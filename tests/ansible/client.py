"""Clients the fleet tests aim at the app hosts through their loopback-published HTTPS ports:
a request loop, an ingest-API producer and a WebSocket watcher. Each runs in a thread, is bounded in
count and time, and records every failure instead of raising, so a test can assert on the totals.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

# The fleet's certificates are self-signed; these clients test routing and reloads, not PKI.
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE


def request(port: int, path: str, method: str = "GET", body: dict | None = None, token: str = "",
            host: str = "herald.test", timeout: float = 60, headers: dict | None = None):
    """One HTTPS request to 127.0.0.1:port; returns (status, parsed JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Host": host, "Accept": "application/json", **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=INSECURE) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


@dataclass
class RequestLoop:
    """GET /healthz round-robin over the app hosts until stopped (at most max_requests / max_seconds)."""

    ports: list[int]
    max_requests: int = 20000
    max_seconds: float = 900
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        n = 0
        while not self.stop.is_set() and n < self.max_requests and time.monotonic() < deadline:
            port = self.ports[n % len(self.ports)]
            n += 1
            try:
                status, body = request(port, "/healthz", timeout=60)
            except Exception as exc:
                self.failures.append(f"{port}: {exc.__class__.__name__}: {exc}")
                continue
            if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                self.ok += 1
            else:
                self.failures.append(f"{port}: HTTP {status}: {str(body)[:200]}")
            time.sleep(0.02)


@dataclass
class Producer:
    """Appends log events to one deploy through the ingest API, a batch every `pause` seconds."""

    port: int
    token: str
    deploy_id: int
    lines_per_batch: int = 5
    pause: float = 0.25
    max_batches: int = 4000
    batches: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set() and self.batches < self.max_batches:
            events = [{"kind": "log", "data": {"line": f"batch {self.batches} line {i}", "stream": "stdout"}}
                      for i in range(self.lines_per_batch)]
            try:
                status, body = request(self.port, f"/api/v1/deploys/{self.deploy_id}/events/", "POST",
                                       {"events": events}, token=self.token,
                                       headers={"Idempotency-Key": uuid.uuid4().hex})
            except Exception as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
                continue
            if status != 202:
                self.failures.append(f"HTTP {status}: {str(body)[:200]}")
            self.batches += 1
            time.sleep(self.pause)


@dataclass
class Watcher:
    """Watches one deploy over /ws/deploys/<id>/, resuming by seq after every drop, until the deploy
    finishes. Records every event's seq in arrival order (duplicates included) and the drops."""

    port: int
    session: str
    deploy_id: int
    max_seconds: float = 1200
    seqs: list[int] = field(default_factory=list)
    drops: int = 0
    connects: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    connected: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self.finished.is_set() and time.monotonic() < deadline:
            after = max(self.seqs, default=0)
            url = f"wss://127.0.0.1:{self.port}/ws/deploys/{self.deploy_id}/?after={after}"
            try:
                with connect(url, ssl=INSECURE, origin=f"https://127.0.0.1:{self.port}",
                             additional_headers={"Cookie": f"sessionid={self.session}"},
                             open_timeout=30, close_timeout=2) as ws:
                    self.connects += 1
                    self.connected.set()
                    for raw in ws:
                        frame = json.loads(raw)
                        if frame.get("type") == "error":
                            self.errors.append(str(frame))
                        for event in frame.get("events", []) if frame.get("type") == "events" else []:
                            self.seqs.append(event["seq"])
                            if event["kind"] == "status" and event["data"].get("status") in (
                                    "succeeded", "failed", "cancelled"):
                                self.finished.set()
                        if self.finished.is_set():
                            return
                    self.drops += 1  # the server closed the socket
            except ConnectionClosed:
                self.drops += 1
            except OSError as exc:  # refused while daphne restarts: not a drop, just a retry
                self.errors.append(f"connect: {exc}")
            except Exception as exc:
                self.errors.append(f"connect: {exc.__class__.__name__}: {exc}")
            time.sleep(0.3)


def start(target) -> threading.Thread:
    thread = threading.Thread(target=target.run, daemon=True)
    thread.start()
    return thread
