"""herald: report a deploy's progress to Herald from a shell script or CI job.

    export HERALD_URL=https://herald.example.com HERALD_TOKEN=hrld_…
    export HERALD_CA_FILE=ca.pem   # optional: trust only this CA (a self-signed Herald)
    id=$(python -m herald_cli start --service billing-api --env production --version "$SHA")
    ./deploy.sh 2>&1 | python -m herald_cli log --deploy "$id"
    python -m herald_cli finish --deploy "$id" --status succeeded

    # or all in one: run a command, stream its output, finish with its exit status
    python -m herald_cli run --service billing-api --env production --version "$SHA" -- ./deploy.sh

Herald being down never fails the pipeline: the CLI warns on stderr and exits 0 (`run` exits with
the command's own status). Pass --strict to exit 2 instead when Herald cannot be reached.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import threading
import time

from .client import HeraldClient

BATCH_LINES = 500
BATCH_SECONDS = 0.5


def _lines(binary) -> io.TextIOWrapper:
    """Lines split at line feeds only: Python's universal newlines would make every carriage-return
    redraw of a progress bar a log line of its own."""
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n")


def _shown(raw: str) -> str:
    """A line as a terminal ends up showing it: what follows its last carriage return (the runner's
    rule too, deploys/runner/process.py)."""
    return raw.rstrip("\n").rstrip("\r").rpartition("\r")[2]


def _warn(args, message: str) -> int:
    print(f"herald: warning: {message}", file=sys.stderr)
    return 2 if args.strict else 0


def _client(args) -> HeraldClient | None:
    url, token = args.url or os.environ.get("HERALD_URL"), args.token or os.environ.get("HERALD_TOKEN")
    if not url or not token:
        return None
    return HeraldClient(url, token, timeout=args.timeout)


class LineSender:
    """Sends lines in batches (every BATCH_SECONDS or BATCH_LINES). After the first failure it stops
    trying, so a dead Herald costs the pipeline one timeout, not one per batch."""

    def __init__(self, client: HeraldClient, deploy_id: int):
        self.client, self.deploy_id = client, deploy_id
        self.pending: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.failed = ""
        self.last = time.monotonic()

    def add(self, line: str, stream: str = "stdout") -> None:
        with self.lock:
            self.pending.append((line, stream))
            due = len(self.pending) >= BATCH_LINES or time.monotonic() - self.last >= BATCH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
            self.last = time.monotonic()
        if not batch or self.failed:
            return
        events = [{"kind": "log", "data": {"line": line[:16000], "stream": stream}} for line, stream in batch]
        for start in range(0, len(events), 1000):
            reply = self.client.events(self.deploy_id, events[start : start + 1000])
            if not reply.ok:
                self.failed = reply.message
                return


def cmd_start(args, client) -> int:
    reply = client.start(args.service, args.env, args.version, args.started_by)
    if not reply.ok:
        return _warn(args, f"could not start the deploy: {reply.message}")
    print(reply.data["id"])
    return 0


def cmd_log(args, client) -> int:
    sender = LineSender(client, args.deploy)
    for raw in _lines(sys.stdin.buffer):
        line = _shown(raw)
        if args.tee:
            print(line, flush=True)
        sender.add(line, args.stream)
    sender.flush()
    return _warn(args, f"lines were not all sent: {sender.failed}") if sender.failed else 0


def cmd_progress(args, client) -> int:
    reply = client.progress(args.deploy, args.percent, args.step)
    return 0 if reply.ok else _warn(args, f"could not set progress: {reply.message}")


def cmd_finish(args, client) -> int:
    reply = client.finish(args.deploy, args.status, args.reason)
    return 0 if reply.ok else _warn(args, f"could not finish the deploy: {reply.message}")


def cmd_run(args, client) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("herald: run needs a command after --", file=sys.stderr)
        return 64
    reply = client.start(args.service, args.env, args.version, args.started_by) if client else None
    deploy_id = reply.data.get("id") if reply and reply.ok else None
    if reply is not None and not reply.ok:
        _warn(args, f"could not start the deploy ({reply.message}); running the command anyway")
    sender = LineSender(client, deploy_id) if deploy_id else None
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pump(pipe, stream, echo):
        for raw in _lines(pipe):
            echo.write(raw)
            echo.flush()
            if sender:
                sender.add(_shown(raw), stream)

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, "stdout", sys.stdout)),
        threading.Thread(target=pump, args=(proc.stderr, "stderr", sys.stderr)),
    ]
    for t in threads:
        t.start()
    code = proc.wait()
    for t in threads:
        t.join()
    if sender:
        sender.flush()
        final = client.finish(
            deploy_id, "succeeded" if code == 0 else "failed", "" if code == 0 else f"exit status {code}"
        )
        if sender.failed or not final.ok:
            _warn(args, f"Herald did not get everything: {sender.failed or final.message}")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Herald's base URL (default: $HERALD_URL)")
    parser.add_argument("--token", help="an API token (default: $HERALD_TOKEN)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per request (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 2 when Herald cannot be reached")
    sub = parser.add_subparsers(dest="cmd", required=True)

    def deploy_args(p):
        p.add_argument("--service", required=True)
        p.add_argument("--env", required=True)
        p.add_argument("--version", required=True)
        p.add_argument("--started-by", default=os.environ.get("HERALD_STARTED_BY", ""))

    deploy_args(sub.add_parser("start", help="start a deploy; prints its id"))
    p = sub.add_parser("log", help="send stdin's lines to a deploy")
    p.add_argument("--deploy", type=int, required=True)
    p.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    p.add_argument("--tee", action="store_true", help="also copy stdin to stdout")
    p = sub.add_parser("progress", help="set a deploy's progress")
    p.add_argument("--deploy", type=int, required=True)
    p.add_argument("--percent", type=int, required=True)
    p.add_argument("--step")
    p = sub.add_parser("finish", help="end a deploy with a status")
    p.add_argument("--deploy", type=int, required=True)
    p.add_argument("--status", choices=["succeeded", "failed", "cancelled"], required=True)
    p.add_argument("--reason", default="")
    p = sub.add_parser("run", help="run a command as a deploy, streaming its output")
    deploy_args(p)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    client = _client(args)
    if args.cmd == "run":
        if client is None:
            _warn(args, "HERALD_URL/HERALD_TOKEN not set; running without reporting")
        return cmd_run(args, client)
    if client is None:
        if args.cmd == "log":  # still drain stdin: the writer upstream must not die of SIGPIPE
            for raw in sys.stdin:
                if args.tee:
                    sys.stdout.write(raw)
        return _warn(args, "set HERALD_URL and HERALD_TOKEN (or --url/--token)")
    return {"start": cmd_start, "log": cmd_log, "progress": cmd_progress, "finish": cmd_finish}[args.cmd](args, client)


if __name__ == "__main__":
    sys.exit(main())
