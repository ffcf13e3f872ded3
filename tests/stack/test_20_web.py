"""Through nginx, each path reaches the right server: pages over uWSGI, /ws/ on daphne, /static/ from
disk, a deploy run by the real Celery worker on a browser's socket; client headers cannot spoof the
address Django sees."""

from __future__ import annotations

import json
import secrets
import time

from websockets.asyncio.client import connect

from tests.stack.wsclient import DeployFollower, assert_exactly_once


def log_entries(stack, uri: str) -> list[dict]:
    return [entry for entry in stack.access_log() if entry["uri"] == uri]


def wait_log_entry(stack, uri: str, timeout: float = 5) -> dict:
    """nginx writes the access-log line when the request ends; a WebSocket's ends at close."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = log_entries(stack, uri)
        if entries:
            return entries[-1]
        time.sleep(0.1)
    raise AssertionError(f"no access-log entry for {uri}")


def test_login_and_dashboard_are_served_by_uwsgi(herald_stack):
    stack = herald_stack
    cookie = stack.login()  # GET + POST /login/ through nginx: CSRF and the session work
    status, headers, page = stack.http("GET", "/", cookie=cookie)
    assert status == 200, page[:500]
    assert "stack" in page  # the logged-in user's name is on the page
    entry = wait_log_entry(stack, "/")
    assert entry["upstream_addr"].startswith("unix:") and entry["upstream_addr"].endswith("uwsgi.sock"), entry
    # Security headers come from nginx's snippet, once each (Django's copies are hidden).
    for name, value in [("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
                        ("referrer-policy", "strict-origin-when-cross-origin"),
                        ("cross-origin-opener-policy", "same-origin")]:
        assert headers.get(name) == value, (name, headers.get(name))
    assert "server" in headers and headers["server"] == "nginx"  # no version (server_tokens off)


def test_anonymous_page_redirects_to_login(herald_stack):
    status, headers, _ = herald_stack.http("GET", "/")
    assert status == 302 and "/login/" in headers["location"]


def test_static_files_come_from_nginx_with_long_cache(herald_stack):
    stack = herald_stack
    status, headers, body = stack.http("GET", "/static/web/css/herald.css")
    assert status == 200 and len(body) > 100
    assert "max-age=2592000" in headers.get("cache-control", ""), headers
    assert headers.get("x-content-type-options") == "nosniff"  # the snippet is kept in this location too
    entry = log_entries(stack, "/static/web/css/herald.css")[-1] if log_entries(
        stack, "/static/web/css/herald.css") else None
    # /static/ has access_log off, so no upstream was involved and no line was written.
    assert entry is None


async def test_websocket_upgrade_reaches_daphne(herald_stack, session_cookie):
    stack = herald_stack
    async with connect(stack.ws_url("/ws/dashboard/"), additional_headers=stack.ws_headers(session_cookie),
                       open_timeout=15) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and isinstance(hello["deploys"], list)
    entry = wait_log_entry(stack, "/ws/dashboard/")
    assert entry["status"] == 101 and "/daphne-" in entry["upstream_addr"], entry


async def test_cross_site_websocket_is_refused(herald_stack, session_cookie):
    stack = herald_stack
    headers = {"Cookie": session_cookie, "Origin": "http://evil.example"}
    try:
        async with connect(stack.ws_url("/ws/dashboard/"), additional_headers=headers, open_timeout=15):
            raise AssertionError("a cross-origin socket was accepted")
    except Exception as exc:  # websockets raises InvalidStatus for the 403 handshake answer
        assert "403" in str(exc), exc


async def test_deploy_run_by_celery_reaches_a_websocket_client(herald_stack, session_cookie):
    stack = herald_stack
    deploy_id = stack.start_deploy("quick")
    follower = await DeployFollower(stack, session_cookie, deploy_id).run(timeout=60)
    assert follower.final_status == "succeeded", follower.events[-3:]
    lines = [e["data"]["line"] for e in follower.events if e["kind"] == "log"]
    assert [f"line {i} of 20" for i in range(1, 21)] == [line for line in lines if line.startswith("line ")]
    status, stored = stack.deploy_state(deploy_id)
    assert status == "succeeded"
    assert_exactly_once(follower, stored)


async def test_client_supplied_forwarded_for_does_not_reach_django(herald_stack, session_cookie):
    """A spoofed X-Forwarded-For is overwritten by nginx for both upstreams. uWSGI's error log line
    shows the X-Forwarded-For Django received; daphne's access log shows the client address it
    derived from that header (--proxy-headers)."""
    stack = herald_stack
    spoofed = "203.0.113.77"
    probe = f"/xff-probe-{secrets.token_hex(4)}/"
    status, _, _ = stack.http("GET", probe, headers={"X-Forwarded-For": spoofed, "X-Real-IP": spoofed})
    assert status == 404
    deadline = time.monotonic() + 5
    uwsgi_lines: list[str] = []
    while not uwsgi_lines and time.monotonic() < deadline:  # uWSGI logs after the response is sent
        uwsgi_lines = [line for line in (stack.log / "uwsgi.log").read_text().splitlines()
                       if line.startswith("uwsgi ") and probe in line]
        time.sleep(0.1)
    assert uwsgi_lines, "uWSGI did not log the 404 probe"
    assert "xff=127.0.0.1 " in uwsgi_lines[-1] and spoofed not in uwsgi_lines[-1], uwsgi_lines[-1]

    headers = {**stack.ws_headers(session_cookie), "X-Forwarded-For": spoofed}
    async with connect(stack.ws_url("/ws/logs/?probe=xff"), additional_headers=headers, open_timeout=15) as ws:
        await ws.recv()
    deadline = time.monotonic() + 5
    daphne_lines: list[str] = []
    while not daphne_lines and time.monotonic() < deadline:
        daphne_lines = [line for path in stack.log.glob("daphne-*.log")
                        for line in path.read_text().splitlines() if "WSCONNECT /ws/logs/" in line]
        time.sleep(0.1)
    assert daphne_lines, "daphne logged no WSCONNECT"
    assert all(spoofed not in line for line in daphne_lines), daphne_lines
    assert daphne_lines[-1].startswith("127.0.0.1"), daphne_lines[-1]


def test_login_is_rate_limited_per_address(herald_stack):
    """A burst beyond limit_req's rate + burst gets 429 from nginx before Django sees it."""
    stack = herald_stack
    statuses = [stack.http("GET", "/login/")[0] for _ in range(60)]
    print(f"login burst: {statuses.count(200)} × 200, {statuses.count(429)} × 429")
    assert 429 in statuses and statuses[0] == 200, statuses
    time.sleep(3)  # the 10 r/s budget refills before the next test logs in from the same address
    assert stack.http("GET", "/login/")[0] == 200


def test_bodies_over_the_limit_are_refused_by_nginx(herald_stack):
    stack = herald_stack
    status, _, body = stack.http("POST", "/api/v1/deploys/", body=b"x" * (3 * 1024 * 1024),
                                 headers={"Content-Type": "application/json"})
    assert status == 413 and "nginx" in body, (status, body[:200])
