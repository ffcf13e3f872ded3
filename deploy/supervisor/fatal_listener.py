#!/usr/bin/env python3
"""Supervisor event listener: make a program that entered FATAL (crash loop, gave up) impossible to miss.

Copied, not rendered: it ships with the checkout and runs as
    [eventlistener:fatal-watch] command=python deploy/supervisor/fatal_listener.py [--stop-supervisord]
    events=PROCESS_STATE_FATAL
Read by: supervisord, which starts it and talks to it over stdin/stdout (the event listener protocol,
http://supervisord.org/events.html). Apply a change: `supervisorctl restart fatal-watch`.

On every FATAL it writes one line to stderr (a file in the log directory, or the container's log)
naming the program and where to look. With --stop-supervisord (containers) it then sends SIGTERM to
supervisord, so the container exits and its restart policy takes over instead of a half-dead service
answering health checks (the AWX "superwatcher" idea).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def parse_tokens(line: str) -> dict[str, str]:
    """`key:value key:value` → dict (the format of both the header and a state-event payload)."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


def alert(payload: dict[str, str]) -> None:
    name = payload.get("processname", "?")
    group = payload.get("groupname", name)
    full = name if group == name else f"{group}:{name}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(
        f"{stamp} HERALD ALERT: {full} entered FATAL (it kept exiting during startup and supervisor gave "
        f"up); see its log, fix the cause, then `supervisorctl start {full}`\n"
    )
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Report supervisor programs that entered FATAL.")
    parser.add_argument("--stop-supervisord", action="store_true", help="SIGTERM supervisord afterwards")
    args = parser.parse_args(argv)
    stdin, stdout = sys.stdin, sys.stdout
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:  # supervisord went away
            return 0
        header = parse_tokens(header_line)
        payload_text = stdin.read(int(header.get("len", "0")))
        if header.get("eventname") == "PROCESS_STATE_FATAL":
            alert(parse_tokens(payload_text.split("\n", 1)[0]))
            if args.stop_supervisord:
                sys.stderr.write("HERALD ALERT: stopping supervisord so the container restarts\n")
                sys.stderr.flush()
                os.kill(os.getppid(), signal.SIGTERM)
        stdout.write("RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
