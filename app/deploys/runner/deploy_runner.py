"""Run a deploy's steps and turn their output into events (called by the Celery task in tasks.py).

Output lines are batched: a batch is recorded at least every HERALD_BATCH_SECONDS or every
HERALD_BATCH_LINES lines, so a chatty step costs one transaction and one channel message per batch,
never one per line. The runner heartbeats while it works and checks for a cancel request.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone as dj_timezone

from ..events import EventError, NewEvent, record
from ..models import Deploy
from ..status import Status, StepState
from .process import run_step

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 0.5


class _Batcher:
    """Collects output lines and records them as one batch when due."""

    def __init__(self, deploy_id: int):
        self.deploy_id = deploy_id
        self.pending: list[NewEvent] = []
        self.last_flush = time.monotonic()

    def add(self, step_index: int, stream: str, line: str, unix_time: float) -> None:
        ts = datetime.fromtimestamp(unix_time, tz=UTC)
        self.pending.append(NewEvent("log", {"line": line, "stream": stream, "step": step_index}, ts))
        if len(self.pending) >= settings.HERALD_BATCH_LINES:
            self.flush()

    def due(self) -> bool:
        return bool(self.pending) and time.monotonic() - self.last_flush >= settings.HERALD_BATCH_SECONDS

    def flush(self, extra: list[NewEvent] | None = None) -> None:
        batch, self.pending = self.pending + (extra or []), []
        self.last_flush = time.monotonic()
        if batch:
            record(self.deploy_id, batch)


def claim(deploy_id: int) -> bool:
    """Move a queued deploy to running. False when it is not queued any more (a redelivered task
    for a deploy that already ran, was cancelled or was marked interrupted): then do nothing."""
    with transaction.atomic():
        deploy = Deploy.objects.select_for_update().filter(pk=deploy_id).first()
        if deploy is None or deploy.status != Status.QUEUED:
            return False
        record(deploy_id, [NewEvent("status", {"status": Status.RUNNING})])
    return True


def run_deploy(deploy_id: int, grace: float = 3.0) -> str:
    """Run every step of a queued deploy; return its final status (or '' if it was not ours to run)."""
    if not claim(deploy_id):
        log.info("deploy %s is not queued; nothing to run", deploy_id)
        return ""
    deploy = Deploy.objects.select_related("service").get(pk=deploy_id)
    steps = list(deploy.service.steps.order_by("position"))
    batcher = _Batcher(deploy_id)
    record(
        deploy_id,
        [NewEvent("step", {"index": i, "name": s.name, "state": StepState.PENDING}) for i, s in enumerate(steps)]
        or [NewEvent("progress", {"progress": 0})],
    )
    last_beat = last_cancel_check = time.monotonic()
    cancelled_by = ""

    def tick() -> bool:
        nonlocal last_beat, last_cancel_check, cancelled_by
        now = time.monotonic()
        if batcher.due():
            batcher.flush()
        if now - last_beat >= settings.HERALD_HEARTBEAT_SECONDS:
            Deploy.objects.filter(pk=deploy_id).update(heartbeat_at=dj_timezone.now())
            last_beat = now
        if now - last_cancel_check >= CANCEL_CHECK_SECONDS:
            last_cancel_check = now
            row = Deploy.objects.filter(pk=deploy_id).values("cancel_requested_by", "cancel_requested_at").get()
            if row["cancel_requested_at"]:
                cancelled_by = row["cancel_requested_by"]
                return True
        return False

    final, reason = Status.SUCCEEDED, ""
    for index, step in enumerate(steps):
        record(deploy_id, [NewEvent("step", {"index": index, "name": step.name, "state": StepState.RUNNING})])
        result = run_step(
            step.argv,
            on_line=lambda stream, line, t, i=index: batcher.add(i, stream, line, t),
            tick=tick,
            timeout=step.timeout_seconds,
            env=step.environment,
            grace=grace,
        )
        if result.error:
            batcher.add(index, "stderr", result.error, time.time())
        elif result.timed_out:
            batcher.add(index, "stderr", f"Step {step.name} timed out after {step.timeout_seconds}s.", time.time())
        elif not result.succeeded and not result.cancelled:
            batcher.add(index, "stderr", f"Step {step.name} exited with status {result.returncode}.", time.time())
        state = (
            StepState.SUCCEEDED if result.succeeded else StepState.CANCELLED if result.cancelled else StepState.FAILED
        )
        closing = [
            NewEvent("step", {"index": index, "name": step.name, "state": state, "duration_ms": result.duration_ms})
        ]
        if result.succeeded:
            closing.append(NewEvent("progress", {"progress": int(100 * (index + 1) / len(steps))}))
        batcher.flush(closing)
        if result.cancelled:
            final = Status.CANCELLED
            break
        if not result.succeeded:
            final, reason = Status.FAILED, f"step {step.name} failed"
            break
    data = {"status": final}
    if final == Status.CANCELLED and cancelled_by:
        data["by"] = cancelled_by
    if reason:
        data["reason"] = reason
    try:
        record(deploy_id, [NewEvent("status", data)])
    except EventError as exc:  # housekeeping already ended it (we were presumed lost): keep its verdict
        log.warning("deploy %s: could not record final status %s: %s", deploy_id, final, exc)
    return final
