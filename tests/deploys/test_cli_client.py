"""herald_cli.client over HTTPS: a Herald with a self-signed certificate is trusted through `cafile` or
HERALD_CA_FILE (what the fleet's callback plugin uses), refused without it, and a bad CA file is a
warning, never an exception."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from herald_cli.client import HeraldClient

APP_DIR = Path(__file__).resolve().parents[2] / "app"


class _Ingest(BaseHTTPRequestHandler):
    """POST /api/v1/deploys/ → 201 {"id": 42, ...}, like Herald's ingest API."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        ok = self.path == "/api/v1/deploys/" and self.headers.get("Authorization") == "Bearer hrld_test"
        reply = json.dumps({"id": 42, "service": body.get("service")} if ok else {}).encode()
        self.send_response(201 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tls_herald(tmp_path_factory):
    """An HTTPS stub on a free loopback port with a fresh self-signed certificate for 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=herald-cli-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(autouse=True)
def _no_ca_from_the_environment(monkeypatch):
    monkeypatch.delenv("HERALD_CA_FILE", raising=False)


def test_cafile_trusts_a_self_signed_herald(tls_herald):
    url, cert = tls_herald
    reply = HeraldClient(url, "hrld_test", timeout=5, retries=0, cafile=cert).start("web", "prod", "v1")
    assert (reply.ok, reply.status, reply.data) == (True, 201, {"id": 42, "service": "web"}), reply.message


def test_without_a_cafile_the_certificate_is_refused(tls_herald):
    url, _ = tls_herald
    reply = HeraldClient(url, "hrld_test", timeout=5, retries=0).start("web", "prod", "v1")
    assert not reply.ok and "CERTIFICATE_VERIFY_FAILED" in reply.message, reply


def test_herald_ca_file_is_the_default(tls_herald, monkeypatch):
    url, cert = tls_herald
    monkeypatch.setenv("HERALD_CA_FILE", cert)
    assert HeraldClient(url, "hrld_test", timeout=5, retries=0).start("web", "prod", "v1").data["id"] == 42
    # An explicit empty cafile means the system bundle again, whatever the environment says.
    assert not HeraldClient(url, "hrld_test", timeout=5, retries=0, cafile="").start("web", "prod", "v1").ok


def test_a_missing_ca_file_is_a_failed_reply_not_an_exception(tls_herald, tmp_path):
    url, _ = tls_herald
    reply = HeraldClient(url, "hrld_test", timeout=5, retries=0, cafile=str(tmp_path / "absent.pem")).start(
        "web", "prod", "v1"
    )
    assert not reply.ok and reply.message.startswith(f"cannot use CA file {tmp_path / 'absent.pem'}"), reply


def test_the_cli_reads_herald_ca_file(tls_herald):
    url, cert = tls_herald
    env = {**os.environ, "HERALD_URL": url, "HERALD_TOKEN": "hrld_test", "PYTHONPATH": str(APP_DIR)}
    cmd = [
        sys.executable,
        "-m",
        "herald_cli",
        "--timeout",
        "5",
        "start",
        "--service",
        "web",
        "--env",
        "prod",
        "--version",
        "v1",
    ]
    trusted = subprocess.run(cmd, env={**env, "HERALD_CA_FILE": cert}, capture_output=True, text=True, timeout=60)
    assert (trusted.returncode, trusted.stdout.strip()) == (0, "42"), trusted.stderr
    env.pop("HERALD_CA_FILE", None)
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 0 and refused.stdout == "" and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
