# Herald reports its own deploys: this callback sends an ansible-playbook run to a Herald instance
# through the ingest API (docs/protocol.md), so release engineers watch the fleet deploy live on Herald.
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: herald
type: notification
short_description: Report a playbook run to Herald as one deploy, live.
description:
  - One deploy per run (service, environment, version), a step per task, a log line per host result,
    and a final status from the run's outcome (failed when any host failed or was unreachable).
  - Silent unless HERALD_URL and HERALD_TOKEN are set. Herald being down or slow never fails or holds up
    the playbook; events go through a bounded buffer to a background thread with short timeouts, and
    the plugin prints one warning and gives up after the first network failure.
  - Uses the stdlib client in app/herald_cli/client.py (one HTTP client for the CLI and this plugin).
requirements:
  - enable in ansible.cfg (callbacks_enabled = herald)
options: {}
notes:
  - "Environment: HERALD_URL (https://herald.example.com), HERALD_TOKEN (a token with deploys:write),
    HERALD_CA_FILE (PEM file of the CA or self-signed certificate to trust for HERALD_URL instead of the
    system bundle),
    HERALD_REPORT_SERVICE (default herald), HERALD_REPORT_ENVIRONMENT (default: the inventory directory's
    name), HERALD_REPORT_VERSION (default: the herald_version extra var, else the playbook name),
    HERALD_REPORT_TIMEOUT (seconds per HTTP call, default 10; calls run in a background thread),
    HERALD_REPORT_FLUSH_SECONDS (the most the
    run waits at its end for the last events, default 5), HERALD_REPORT_BUFFER (events held while
    Herald is slow, default 5000; beyond that events are dropped and counted)."
"""

# app/ of this repository: the client module lives there (ansible/plugins/callback/ → repo root).
_APP_DIR = Path(__file__).resolve().parents[3] / "app"
if str(_APP_DIR) not in sys.path:
    sys.path.insert(0, str(_APP_DIR))

try:
    from herald_cli.client import HeraldClient
except ImportError as exc:  # a checkout without app/: the playbook still runs, unreported
    HeraldClient = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""

_STOP = object()
_MAX_LINE = 4000  # characters per log line; a huge module result is cut, not sent whole
_BATCH = 500  # events per POST (the API takes up to 1000)


class Reporter:
    """Owns the network: a daemon thread drains a bounded queue into the ingest API.

    The playbook thread only ever calls put(), which never blocks. After the first failure to reach
    Herald the thread stops sending (one timeout at most, not one per batch) and the run carries on.
    """

    def __init__(self, client, service, environment, version, started_by, buffer_size, warn):
        self.client = client
        self.start_body = (service, environment, version, started_by)
        self.queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self.warn = warn
        self.deploy_id = None
        self.deploy_url = ""
        self.failed = ""
        self.dropped = 0
        self.final_status = ""  # set once Herald has taken the finish call
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name="herald-report", daemon=True)
        self.thread.start()

    def put(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self, status: str, reason: str, wait: float) -> None:
        """Queue the final status and wait at most `wait` seconds for the thread to send it."""
        try:
            self.queue.put(("finish", status, reason), timeout=max(0.1, wait / 2))
            self.queue.put(_STOP, timeout=0.1)
        except queue.Full:
            self.dropped += 1
        self.finished.wait(wait)
        if not self.finished.is_set() and not self.failed:
            self.warn(f"Herald did not take the last events within {wait:g}s; the report may be incomplete")
        if self.dropped:
            self.warn(f"{self.dropped} events were dropped because Herald was too slow")

    def _fail(self, message: str) -> None:
        if not self.failed:
            self.failed = message
            self.warn(f"not reporting this run to Herald: {message}")

    def _run(self) -> None:
        try:
            service, environment, version, started_by = self.start_body
            reply = self.client.start(service, environment, version, started_by)
            if not reply.ok:
                self._fail(reply.message)
                return
            self.deploy_id = reply.data.get("id")
            self.deploy_url = reply.data.get("url", "")
            held = None  # an item taken while filling a batch, handled next (order is kept)
            while True:
                item, held = (held, None) if held is not None else (self.queue.get(), None)
                if item is _STOP:
                    return
                if self.failed:
                    continue
                if item[0] == "finish":
                    reply = self.client.finish(self.deploy_id, item[1], item[2])
                    if reply.ok:
                        self.final_status = item[1]
                    else:
                        self._fail(reply.message)
                    continue
                batch = [item]
                # Take what is already waiting, so a burst of host results is one POST.
                while len(batch) < _BATCH:
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP or nxt[0] != "event":
                        held = nxt
                        break
                    batch.append(nxt)
                reply = self.client.events(self.deploy_id, [event for _, event in batch])
                if not reply.ok:
                    self._fail(reply.message)
        except Exception as exc:  # never let a reporting bug reach the playbook
            self._fail(f"{exc.__class__.__name__}: {exc}")
        finally:
            self.finished.set()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "herald"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reporter: Reporter | None = None
        self.disabled_reason = ""
        self.step_index = -1
        self.step_name = ""
        self.step_started = 0.0
        self.step_failed = False
        self.playbook_name = ""
        self.url = os.environ.get("HERALD_URL", "").strip()
        self.token = os.environ.get("HERALD_TOKEN", "").strip()
        if not (self.url and self.token):
            self.disabled_reason = "HERALD_URL/HERALD_TOKEN not set"
        elif HeraldClient is None:
            self.disabled_reason = f"cannot import herald_cli.client from {_APP_DIR} ({_IMPORT_ERROR})"
            self._warn(f"not reporting this run to Herald: {self.disabled_reason}")

    # ---- helpers --------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        self._display.warning(f"herald: {message}")

    def _event(self, kind: str, data: dict) -> None:
        if self.reporter:
            self.reporter.put(("event", {"kind": kind, "data": data}))

    def _log(self, line: str, stream: str = "stdout") -> None:
        data = {"line": line[:_MAX_LINE], "stream": stream}
        if self.step_index >= 0:
            data["step"] = self.step_index
        self._event("log", data)

    def _end_step(self) -> None:
        if self.step_index >= 0 and self.step_name:
            self._event("step", {
                "index": self.step_index,
                "name": self.step_name,
                "state": "failed" if self.step_failed else "succeeded",
                "duration_ms": int((time.monotonic() - self.step_started) * 1000),
            })
        self.step_name = ""

    def _begin_step(self, name: str) -> None:
        self._end_step()
        self.step_index += 1
        self.step_name = name[:200] or f"step {self.step_index}"
        self.step_started = time.monotonic()
        self.step_failed = False
        self._event("step", {"index": self.step_index, "name": self.step_name, "state": "running"})

    # ---- playbook events --------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook_name = Path(playbook._file_name).stem

    def v2_playbook_on_play_start(self, play):
        if self.disabled_reason:
            return
        if self.reporter is None:
            variables = play.get_variable_manager().extra_vars
            inventory = play.get_variable_manager()._inventory
            sources = [s for s in (inventory._sources if inventory else []) if s]
            environment = os.environ.get("HERALD_REPORT_ENVIRONMENT") or (
                Path(sources[0]).name if sources else "default")
            version = os.environ.get("HERALD_REPORT_VERSION") or str(
                variables.get("herald_version") or self.playbook_name or "playbook")
            user = os.environ.get("USER") or "ansible"
            client = HeraldClient(self.url, self.token, timeout=float(os.environ.get("HERALD_REPORT_TIMEOUT", 10)),
                                  retries=1)
            self.reporter = Reporter(
                client,
                service=os.environ.get("HERALD_REPORT_SERVICE", "herald"),
                environment=environment,
                version=version[:64],
                started_by=f"ansible:{self.playbook_name}:{user}"[:64],
                buffer_size=int(os.environ.get("HERALD_REPORT_BUFFER", 5000)),
                warn=self._warn,
            )
        hosts = ", ".join(play.hosts) if isinstance(play.hosts, list) else play.hosts
        self._log(f"PLAY [{play.get_name()}] on {hosts}")

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self.reporter:
            self._begin_step(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        if self.reporter:
            self._begin_step(f"handler: {task.get_name()}")

    def _result_line(self, state: str, result) -> str:
        host = result._host.get_name()
        item = result._result.get("item")
        label = f" ({item})" if item is not None and not isinstance(item, dict) else ""
        line = f"{state}: [{host}]{label}"
        message = result._result.get("msg")
        if state in ("failed", "unreachable") and message:
            line += f" {message}"
        return line

    def v2_runner_on_ok(self, result):
        if self.reporter:
            self._log(self._result_line("changed" if result._result.get("changed") else "ok", result))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self.reporter:
            if not ignore_errors:
                self.step_failed = True
            self._log(self._result_line("failed" if not ignore_errors else "failed (ignored)", result), "stderr")

    def v2_runner_on_unreachable(self, result):
        if self.reporter:
            self.step_failed = True
            self._log(self._result_line("unreachable", result), "stderr")

    def v2_runner_on_skipped(self, result):
        if self.reporter:
            self._log(self._result_line("skipping", result))

    def v2_playbook_on_stats(self, stats):
        if not self.reporter:
            return
        self._end_step()
        bad = []
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            self._log(f"{host}: ok={summary['ok']} changed={summary['changed']} failed={summary['failures']} "
                      f"unreachable={summary['unreachable']} skipped={summary['skipped']}")
            if summary["failures"] or summary["unreachable"]:
                bad.append(host)
        status = "failed" if bad else "succeeded"
        reason = f"failed on {', '.join(bad)}" if bad else ""
        self.reporter.close(status, reason, wait=float(os.environ.get("HERALD_REPORT_FLUSH_SECONDS", 15)))
        if self.reporter.final_status:
            self._display.display(f"herald: reported as deploy {self.reporter.deploy_id} "
                                  f"({self.url.rstrip('/')}{self.reporter.deploy_url}), {self.reporter.final_status}")
