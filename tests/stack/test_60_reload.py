"""`make reload` (scripts/reload.sh) under a loop of page requests and WebSocket handshakes loses none:
uWSGI chain-reloads, daphne restarts one process at a time on the shared listener, Celery restarts."""

from __future__ import annotations

import json
import threading
import time

from websockets.sync.client import connect


def test_reload_under_load_fails_no_request(herald_stack, session_cookie):
    stack = herald_stack
    before = stack.programs()
    stop = threading.Event()
    results = {"http_ok": 0, "http_failed": [], "ws_ok": 0, "ws_failed": []}

    def http_loop():
        paths = ["/healthz", "/"]
        n = 0
        while not stop.is_set() and n < 20000:
            path = paths[n % 2]
            n += 1
            try:
                status, _, body = stack.http("GET", path, cookie=session_cookie, timeout=60)
                if status == 200:
                    results["http_ok"] += 1
                else:
                    results["http_failed"].append((path, status, body[:200]))
            except OSError as exc:
                results["http_failed"].append((path, repr(exc)))
            time.sleep(0.02)  # steady traffic, without starving the processes being restarted of CPU

    def ws_loop():
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            try:
                with connect(stack.ws_url("/ws/dashboard/"), additional_headers=stack.ws_headers(session_cookie),
                             open_timeout=30) as ws:
                    assert json.loads(ws.recv(timeout=30))["type"] == "hello"
                results["ws_ok"] += 1
            except Exception as exc:
                results["ws_failed"].append(repr(exc))
            time.sleep(0.1)

    threads = [threading.Thread(target=http_loop), threading.Thread(target=ws_loop)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        time.sleep(1)
        reload = stack.script("reload")
    finally:
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(90)
    elapsed = time.monotonic() - started
    print(f"reload took {elapsed:.1f} s; {results['http_ok']} requests, {results['ws_ok']} handshakes ok")
    assert "reload done" in reload.stderr, reload.stderr
    assert results["http_ok"] > 20 and results["ws_ok"] > 5, results
    assert not results["http_failed"], results["http_failed"][:5]
    assert not results["ws_failed"], results["ws_failed"][:5]
    after = stack.wait_programs_running(30)
    for name in ("daphne:daphne-0", "daphne:daphne-1", "worker", "beat"):
        assert after[name][1] != before[name][1], f"{name} was not restarted"
    assert after["uwsgi"][1] == before["uwsgi"][1], "uWSGI's master must stay (workers reload under it)"
