"""A small HTTP client for Herald's ingest API that never raises on network trouble.

Used by the CLI and by the Ansible callback plugin. Every call has a short timeout; a failure
returns a Reply with ok=False and a message instead of raising, so a pipeline never fails or waits
because Herald is down. Retries reuse the batch's Idempotency-Key, so a retried batch is stored once.

HTTPS is verified against the system's CA bundle, or only against `cafile` (default: the HERALD_CA_FILE
environment variable) when one is given: a Herald behind a self-signed or private-CA certificate is
trusted without replacing the whole bundle through SSL_CERT_FILE.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field


@dataclass
class Reply:
    ok: bool
    status: int = 0
    data: dict = field(default_factory=dict)
    message: str = ""


class HeraldClient:
    def __init__(self, url: str, token: str, timeout: float = 3.0, retries: int = 2, cafile: str | None = None):
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.cafile = os.environ.get("HERALD_CA_FILE", "") if cafile is None else cafile
        self.context: ssl.SSLContext | None = None
        self.setup_error = ""
        if self.cafile:
            try:
                self.context = ssl.create_default_context(cafile=self.cafile)
            except (OSError, ssl.SSLError) as exc:  # missing or unreadable file: report, never raise
                self.setup_error = f"cannot use CA file {self.cafile}: {exc}"

    def _call(self, method: str, path: str, body: dict | None = None, key: str | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key:
            headers["Idempotency-Key"] = key
        if self.setup_error:
            return Reply(False, message=self.setup_error)
        last = Reply(False, message="not attempted")
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.base + path, data=payload, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                    return Reply(True, response.status, json.loads(response.read() or b"{}"))
            except urllib.error.HTTPError as exc:
                try:
                    data = json.loads(exc.read() or b"{}")
                except ValueError:
                    data = {}
                message = data.get("error", {}).get("message", exc.reason)
                last = Reply(False, exc.code, data, f"HTTP {exc.code}: {message}")
                if exc.code < 500:
                    return last  # our request is wrong; retrying will not help
            except urllib.error.URLError as exc:  # refused, DNS, TLS
                last = Reply(False, 0, {}, f"cannot reach {self.base}: {exc.reason}")
            except (OSError, ValueError) as exc:  # timed out mid-answer, garbage reply
                last = Reply(False, 0, {}, f"no usable answer from {self.base}: {exc}")
            if attempt < self.retries:
                time.sleep(0.2 * (2**attempt))
        return last

    def start(self, service: str, environment: str, version: str, started_by: str = "") -> Reply:
        body = {"service": service, "environment": environment, "version": version}
        if started_by:
            body["started_by"] = started_by
        return self._call("POST", "/deploys/", body)

    def events(self, deploy_id: int, events: list[dict]) -> Reply:
        return self._call("POST", f"/deploys/{deploy_id}/events/", {"events": events}, key=uuid.uuid4().hex)

    def lines(self, deploy_id: int, lines: list[str], stream: str = "stdout") -> Reply:
        return self.events(deploy_id, [{"kind": "log", "data": {"line": ln, "stream": stream}} for ln in lines])

    def progress(self, deploy_id: int, progress: int, step: str | None = None) -> Reply:
        body = {"progress": progress}
        if step:
            body["step"] = step
        return self._call("POST", f"/deploys/{deploy_id}/progress/", body)

    def finish(self, deploy_id: int, status: str, reason: str = "") -> Reply:
        body = {"status": status}
        if reason:
            body["reason"] = reason
        return self._call("POST", f"/deploys/{deploy_id}/finish/", body)

    def read(self, deploy_id: int) -> Reply:
        return self._call("GET", f"/deploys/{deploy_id}/")
