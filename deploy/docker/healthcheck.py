#!/usr/bin/env python3
"""Container health checks for Herald's images (docker HEALTHCHECK and docker-compose.prod.yml).

Installed by: the Dockerfile into the app and nginx images as /usr/local/bin/herald-healthcheck.
Run by: the Docker engine every few seconds; exit 0 = healthy, anything else = unhealthy, with one line
saying what failed (`docker inspect --format '{{json .State.Health}}' <container>` shows it).

    herald-healthcheck app     supervisor has every program RUNNING, and GET /healthz answers 200 both
                               through uWSGI (uwsgi protocol, :3031) and through daphne (HTTP, :8001)
    herald-healthcheck nginx   nginx serves a collected static file over TLS on :443 (app not needed)
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import struct
import sys
import xmlrpc.client

TIMEOUT = 4.0
# [unix_http_server] file= in the rendered supervisord.conf (herald_run_dir of profile image).
SUPERVISOR_SOCKET = "/run/herald/supervisor.sock"


def host_header() -> str:
    """A host name Django accepts: the first of DJANGO_ALLOWED_HOSTS (a leading dot is a wildcard)."""
    first = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".")
    return "localhost" if first in ("", "*") else first


def uwsgi_get(path: str, port: int) -> int:
    """GET `path` from uWSGI over its own protocol (what nginx's uwsgi_pass speaks); the status code."""
    params = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
        "SERVER_NAME": host_header(), "SERVER_PORT": "80", "HTTP_HOST": host_header(),
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
    }
    body = b"".join(
        struct.pack("<H", len(k.encode())) + k.encode() + struct.pack("<H", len(v.encode())) + v.encode()
        for k, v in params.items()
    )
    # Header: modifier1=0 (WSGI), 16-bit little-endian size of the vars block, modifier2=0.
    packet = struct.pack("<BHB", 0, len(body), 0) + body
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(packet)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")  # "HTTP/1.1 200 OK"
    return int(status_line.split()[1])


def http_get(path: str, port: int, *, tls: bool = False) -> int:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the staging certificate is self-signed
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": host_header()})
        return conn.getresponse().status
    finally:
        conn.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over supervisord's unix socket (its [unix_http_server]), for the XML-RPC interface."""

    def __init__(self, path: str):
        super().__init__("localhost", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self.path)


def supervisor_not_running() -> list[str]:
    """Programs that are not RUNNING, asked over XML-RPC in-process (no supervisorctl start-up cost)."""
    conn = UnixHTTPConnection(SUPERVISOR_SOCKET)
    try:
        body = xmlrpc.client.dumps((), "supervisor.getAllProcessInfo").encode()
        conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        (processes,), _ = xmlrpc.client.loads(conn.getresponse().read())
    finally:
        conn.close()
    if not processes:
        return ["no programs"]
    return [f"{p['group']}:{p['name']} {p['statename']}" for p in processes if p["statename"] != "RUNNING"]


def check_app() -> str | None:
    stopped = supervisor_not_running()
    if stopped:
        return "supervisor: " + "; ".join(stopped)
    code = uwsgi_get("/healthz", int(os.environ.get("HERALD_UWSGI_PORT", "3031")))
    if code != 200:
        return f"uWSGI /healthz answered {code}"
    code = http_get("/healthz", int(os.environ.get("HERALD_DAPHNE_PORT", "8001")))
    if code != 200:
        return f"daphne /healthz answered {code}"
    return None


def check_nginx() -> str | None:
    code = http_get("/static/admin/css/base.css", 443, tls=True)
    return None if code == 200 else f"nginx /static/admin/css/base.css answered {code}"


def main(argv: list[str]) -> int:
    checks = {"app": check_app, "nginx": check_nginx}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: herald-healthcheck {'|'.join(checks)}", file=sys.stderr)
        return 2
    try:
        problem = checks[argv[1]]()
    except (OSError, ValueError, IndexError, http.client.HTTPException, xmlrpc.client.Error) as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
