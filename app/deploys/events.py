"""The one path that writes and publishes deploy events.

Every producer — the Celery runner, the ingest API, the sockets' comment and cancel actions, the
housekeeping task — calls `record()`. It validates the batch, takes the deploy's row lock, numbers
the events from `last_seq + 1`, applies their side effects (status, step, progress) and stores them
in one transaction. Only after the commit does it publish: one channel-layer message for the whole
batch to the deploy's group and, when something a dashboard shows changed, one summary to the
dashboard group. If publishing fails the events are still stored, and consumers fill the gap from
the database by seq, so an accepted event is never lost.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from django.db import connection, transaction
from django.utils import timezone

from herald import sql

from . import publisher
from .models import Deploy, DeployEvent, DeployStep, IngestBatch, iso_ms
from .status import FINISHED, Status, StepState, TransitionError, check_transition
from .summary import deploy_summary

log = logging.getLogger(__name__)

Kind = DeployEvent.Kind
MAX_LINE_CHARS = 16_384
MAX_COMMENT_CHARS = 2_000
# Choices' `.values` rebuilds a list from the enum on every access; validate() runs once per event.
KINDS = frozenset(Kind.values)
STATUSES = frozenset(Status.values)
STEP_STATES = frozenset(StepState.values)
# Kinds whose side effects a dashboard shows (_apply returns True for them): only a batch holding one
# needs the deploy's steps and a published summary.
DASHBOARD_KINDS = frozenset({Kind.STATUS, Kind.STEP, Kind.PROGRESS})
# The deploy columns record() writes: what _apply can change, the numbering and the heartbeat.
DASHBOARD_FIELDS = ("status", "started_at", "finished_at", "current_step", "progress")
SEQ_FIELDS = ("last_seq", "heartbeat_at")
# The columns of a stored event, in the order _insert_events() writes them.
COPY_FIELDS = ("deploy", "seq", "ts", "kind", "data")
# Batches up to this many events are stored by one INSERT, longer ones by COPY (see _insert_events).
INSERT_MAX_ROWS = 10


class EventError(Exception):
    """A batch that cannot be recorded. `code` is machine-readable; `status` is the HTTP answer."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class NewEvent:
    kind: str
    data: dict
    # When the producer saw it (the runner passes the time a line was read); defaults to now.
    ts: datetime | None = None


@dataclass
class Recorded:
    deploy: Deploy
    stored: list[tuple]  # (seq, ts, kind, data) per stored event, in seq order
    first_seq: int
    last_seq: int
    duplicate: bool = False  # an Idempotency-Key seen before: nothing was stored this time
    notices: list[dict] = field(default_factory=list)

    @functools.cached_property
    def events(self) -> list[DeployEvent]:
        """The stored events as (unsaved-looking, pk-less) model instances, built on first use: a model
        __init__ per row was a quarter of a 1000-event batch's CPU, and no producer reads them."""
        return [DeployEvent(deploy=self.deploy, seq=s, ts=t, kind=k, data=d) for s, t, k, d in self.stored]


def _require(data: dict, name: str, kind_: type | tuple, where: str):
    value = data.get(name)
    if value is None:
        raise EventError("missing_field", f"{where}: '{name}' is required")
    if not isinstance(value, kind_) or (isinstance(value, bool) and kind_ is not bool):
        raise EventError("invalid_field", f"{where}: '{name}' has the wrong type")
    return value


def validate(kind: str, data, where: str = "event") -> dict:
    """Check one event's kind and data against docs/protocol.md; return the normalised data."""
    if kind not in KINDS:
        raise EventError("invalid_field", f"{where}: unknown kind {kind!r}; expected one of {Kind.values}")
    if not isinstance(data, dict):
        raise EventError("invalid_field", f"{where}: 'data' must be an object")
    if kind == Kind.LOG:
        line = _require(data, "line", str, where)
        stream = data.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise EventError("invalid_field", f"{where}: 'stream' must be stdout or stderr")
        clean = {"line": line[:MAX_LINE_CHARS], "stream": stream}
        if data.get("step") is not None:
            clean["step"] = _require(data, "step", int, where)
        return clean
    if kind == Kind.PROGRESS:
        progress = _require(data, "progress", int, where)
        if not 0 <= progress <= 100:
            raise EventError("invalid_field", f"{where}: 'progress' must be 0–100")
        return {"progress": progress}
    if kind == Kind.STEP:
        index = _require(data, "index", int, where)
        name = _require(data, "name", str, where)[:100]
        state = _require(data, "state", str, where)
        if state not in STEP_STATES:
            raise EventError("invalid_field", f"{where}: 'state' must be one of {StepState.values}")
        clean = {"index": index, "name": name, "state": state}
        if data.get("duration_ms") is not None:
            clean["duration_ms"] = _require(data, "duration_ms", int, where)
        return clean
    if kind == Kind.STATUS:
        status = _require(data, "status", str, where)
        if status not in STATUSES:
            raise EventError("invalid_field", f"{where}: 'status' must be one of {Status.values}")
        clean = {"status": status}
        for optional in ("by", "reason"):
            if data.get(optional) is not None:
                clean[optional] = str(data[optional])[:500]
        return clean
    # comment
    text = _require(data, "text", str, where).strip()
    if not text:
        raise EventError("invalid_field", f"{where}: 'text' is empty")
    if len(text) > MAX_COMMENT_CHARS:
        raise EventError("field_too_long", f"{where}: 'text' is longer than {MAX_COMMENT_CHARS} characters")
    return {"user": _require(data, "user", str, where)[:150], "text": text}


def record(deploy_id: int, batch: list[NewEvent], *, idempotency_key: str | None = None) -> Recorded:
    """Validate, number, store and then publish a batch of events for one deploy (see module doc)."""
    if not batch:
        raise EventError("missing_field", "the batch holds no events")
    cleaned = [(ev, validate(ev.kind, ev.data, f"event {i}")) for i, ev in enumerate(batch)]
    now = timezone.now()
    with transaction.atomic():
        # Raw SQL built once (sql.py); the service and environment load lazily, for the few batches
        # whose notices or summary name them.
        deploy = sql.first(Deploy, sql.select_by(Deploy, "id", lock=True), [deploy_id])
        if deploy is None:
            raise EventError("not_found", f"deploy {deploy_id} does not exist", 404)
        if idempotency_key:
            seen = IngestBatch.objects.filter(deploy=deploy, key=idempotency_key).first()
            if seen:
                return Recorded(deploy, [], seen.first_seq, seen.last_seq, duplicate=True)
        # Log and comment batches (nearly all ingest traffic) change no step and show nothing new on a
        # dashboard: they skip loading the steps, writing them and building a summary.
        dashboard = any(ev.kind in DASHBOARD_KINDS for ev, _ in cleaned)
        steps = {s.index: s for s in deploy.steps.all()} if dashboard else {}
        rows, notices, dashboard_changed = [], [], False
        for ev, data in cleaned:
            if deploy.status in FINISHED and ev.kind != Kind.COMMENT:
                raise EventError(
                    "deploy_finished",
                    f"deploy {deploy.pk} already ended {deploy.status}; it accepts only comments",
                    409,
                )
            ts = ev.ts or now
            dashboard_changed |= _apply(deploy, steps, ev.kind, data, ts, notices)
            deploy.last_seq += 1
            rows.append((deploy.last_seq, ts, ev.kind, data))
        if deploy.status not in FINISHED:
            deploy.heartbeat_at = now
        # Only the columns a batch can change: a full save() would also write back everything else
        # (cancel_requested_by, …) as this process read it.
        sql.update(deploy, DASHBOARD_FIELDS + SEQ_FIELDS if dashboard else SEQ_FIELDS)
        if dashboard:
            DeployStep.objects.bulk_create([s for s in steps.values() if s.pk is None])
            DeployStep.objects.bulk_update(
                [s for s in steps.values() if s.pk is not None],
                ["state", "started_at", "finished_at", "duration_ms", "name"],
            )
        _insert_events(deploy, rows)
        first_seq, last_seq = rows[0][0], rows[-1][0]
        if idempotency_key:
            IngestBatch.objects.create(deploy=deploy, key=idempotency_key, first_seq=first_seq, last_seq=last_seq)
        result = Recorded(deploy, rows, first_seq, last_seq, notices=notices)
        summary = deploy_summary(deploy, sorted(steps.values(), key=lambda s: s.index)) if dashboard_changed else None
        # The wire form is built after the commit, outside the deploy's row lock.
        transaction.on_commit(
            lambda: publisher.publish_batch(deploy.pk, _wire(rows), summary, dashboard_changed, notices)
        )
    return result


def _insert_events(deploy: Deploy, rows: list[tuple]) -> None:
    """Store the batch's (seq, ts, kind, data) rows in the current transaction.

    On PostgreSQL a few rows go in one INSERT and more by COPY: COPY waits for the server twice (to
    start, then to finish), about a tenth of a single-event POST's uWSGI CPU; bulk_create sends one
    array per column, and psycopg's pure-Python text array dumper escapes every value with a regex,
    about a fifth of a 1000-event batch's CPU. `data` goes as JSON text, as JSONField sends it, and
    PostgreSQL parses it into jsonb.
    """
    if connection.vendor != "postgresql":
        DeployEvent.objects.bulk_create(
            [DeployEvent(deploy=deploy, seq=seq, ts=ts, kind=kind, data=data) for seq, ts, kind, data in rows]
        )
        return
    stored = [(deploy.pk, seq, ts, kind, orjson.dumps(data).decode()) for seq, ts, kind, data in rows]
    if len(stored) <= INSERT_MAX_ROWS:
        with connection.cursor() as cursor:
            cursor.execute(sql.insert_into(DeployEvent, COPY_FIELDS, len(stored)), [v for row in stored for v in row])
        return
    # cursor.copy() bypasses Django's cursor wrapper: wrap its errors so callers still get Django's
    # exception classes (DataError, IntegrityError), as from bulk_create.
    copy_sql = sql.copy_into(DeployEvent, COPY_FIELDS)
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in stored:
            copy.write_row(row)


def _wire(rows: list[tuple]) -> list[dict]:
    """The rows as DeployEvent.as_wire() gives them. A batch from the API shares one timestamp (the
    same object), so it is formatted once per run of equal ones, not once per event."""
    wire, last_ts, last_text = [], None, None
    for seq, ts, kind, data in rows:
        if ts is not last_ts:
            last_ts, last_text = ts, iso_ms(ts)
        wire.append({"seq": seq, "ts": last_text, "kind": kind, "data": data})
    return wire


def _apply(deploy: Deploy, steps: dict, kind: str, data: dict, ts: datetime, notices: list) -> bool:
    """Apply one event's side effect to the deploy; True when a dashboard would show the change."""
    if kind == Kind.STATUS:
        if deploy.last_seq == 0 and data["status"] == Status.QUEUED == deploy.status:
            return True  # the opening event of every deploy's log, not a transition
        try:
            check_transition(deploy.status, data["status"])
        except TransitionError as exc:
            raise EventError("bad_transition", str(exc), 409) from None
        deploy.status = data["status"]
        if deploy.status == Status.RUNNING:
            deploy.started_at = deploy.started_at or ts
            notices.append(_notice(deploy, "started"))
        elif deploy.status in FINISHED:
            deploy.finished_at = ts
            deploy.started_at = deploy.started_at or ts
            deploy.current_step = ""
            if deploy.status == Status.SUCCEEDED:
                deploy.progress = 100
            for step in steps.values():  # nothing is still running once the deploy ended
                if step.state in (StepState.RUNNING, StepState.PENDING):
                    step.state = StepState.CANCELLED if step.state == StepState.RUNNING else StepState.SKIPPED
                    step.finished_at = ts if step.started_at else None
            notices.append(_notice(deploy, "finished"))
        return True
    if kind == Kind.STEP:
        step = steps.get(data["index"]) or DeployStep(deploy=deploy, index=data["index"], name=data["name"])
        steps[data["index"]] = step
        step.name, step.state = data["name"], data["state"]
        if step.state == StepState.RUNNING:
            step.started_at = step.started_at or ts
            deploy.current_step = step.name
        elif step.state != StepState.PENDING:
            step.finished_at = ts
            if "duration_ms" in data:
                step.duration_ms = data["duration_ms"]
            elif step.started_at:
                step.duration_ms = int((ts - step.started_at).total_seconds() * 1000)
        return True
    if kind == Kind.PROGRESS:
        deploy.progress = data["progress"]
        return True
    return False


def _notice(deploy: Deploy, event: str) -> dict:
    what = "started" if event == "started" else deploy.status
    return {
        "id": f"{deploy.pk}:{deploy.status}",
        "event": event,
        "text": f"{deploy.service.slug} {deploy.version} to {deploy.environment.slug} {what}",
    }


def events_after(deploy_id: int, after: int, limit: int = 1000, until: int | None = None) -> list[DeployEvent]:
    """Stored events with seq > after (and ≤ until), in order: replay, gap fill and the API read."""
    qs = DeployEvent.objects.filter(deploy_id=deploy_id, seq__gt=after)
    if until is not None:
        qs = qs.filter(seq__lte=until)
    return list(qs.order_by("seq")[:limit])
