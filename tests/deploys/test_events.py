"""deploys/events.py: numbering, validation, side effects and the finished-deploy rule."""

import threading

import pytest

from deploys import operations
from deploys.events import EventError, NewEvent, record
from deploys.models import Deploy, DeployEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _external(service) -> Deploy:
    return operations.start_deploy(service, "production", "v1", started_by="ci", runner=Deploy.Runner.EXTERNAL)


def test_a_new_external_deploy_opens_with_queued_then_running(service):
    deploy = _external(service)
    kinds = list(DeployEvent.objects.filter(deploy=deploy).values_list("seq", "data__status"))
    assert kinds == [(1, "queued"), (2, "running")]
    assert deploy.status == "running" and deploy.last_seq == 2


def test_concurrent_producers_get_gapless_unique_seqs(service):
    deploy = _external(service)
    errors = []

    def produce(worker: int):
        from django.db import connection

        try:
            for batch in range(15):
                record(deploy.pk, [NewEvent("log", {"line": f"w{worker} b{batch} l{i}"}) for i in range(7)])
        except Exception as exc:  # pragma: no cover — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = list(DeployEvent.objects.filter(deploy=deploy).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 2 + 6 * 15 * 7 + 1))
    lines = DeployEvent.objects.filter(deploy=deploy, kind="log").values_list("data__line", flat=True)
    assert len(set(lines)) == 6 * 15 * 7
    deploy.refresh_from_db()
    assert deploy.last_seq == seqs[-1]


def test_a_batch_is_all_or_nothing(service):
    deploy = _external(service)
    with pytest.raises(EventError) as err:
        record(deploy.pk, [NewEvent("log", {"line": "fine"}), NewEvent("progress", {"progress": 101})])
    assert err.value.code == "invalid_field" and "event 1" in err.value.message
    assert DeployEvent.objects.filter(deploy=deploy).count() == 2


def test_finished_deploy_refuses_progress_with_409_but_takes_comments(service):
    deploy = _external(service)
    operations.finish(deploy.pk, "succeeded", by="ci")
    with pytest.raises(EventError) as err:
        record(deploy.pk, [NewEvent("log", {"line": "late"})])
    assert err.value.status == 409 and err.value.code == "deploy_finished"
    recorded = record(deploy.pk, [NewEvent("comment", {"user": "rita", "text": "nice"})])
    assert recorded.last_seq == 4


@pytest.mark.parametrize(
    ("kind", "data", "code"),
    [
        ("nonsense", {}, "invalid_field"),
        ("log", {}, "missing_field"),
        ("log", {"line": 3}, "invalid_field"),
        ("log", {"line": "x", "stream": "stdin"}, "invalid_field"),
        ("progress", {"progress": True}, "invalid_field"),
        ("step", {"index": 0, "name": "x", "state": "exploded"}, "invalid_field"),
        ("comment", {"user": "u", "text": "x" * 2001}, "field_too_long"),
        ("status", {"status": "done"}, "invalid_field"),
    ],
)
def test_bad_events_are_refused_with_a_code(service, kind, data, code):
    deploy = _external(service)
    with pytest.raises(EventError) as err:
        record(deploy.pk, [NewEvent(kind, data)])
    assert err.value.code == code


def test_status_transitions_are_enforced(service):
    deploy = _external(service)
    with pytest.raises(EventError) as err:
        record(deploy.pk, [NewEvent("status", {"status": "queued"})])
    assert err.value.code == "bad_transition"
    operations.finish(deploy.pk, "failed")
    with pytest.raises(EventError):
        operations.finish(deploy.pk, "succeeded")
    assert Deploy.objects.get(pk=deploy.pk).status == "failed"


def test_step_events_track_state_duration_and_current_step(service):
    deploy = _external(service)
    record(deploy.pk, [NewEvent("step", {"index": 0, "name": "build", "state": "running"})])
    assert Deploy.objects.get(pk=deploy.pk).current_step == "build"
    record(deploy.pk, [NewEvent("step", {"index": 0, "name": "build", "state": "succeeded", "duration_ms": 1500})])
    step = deploy.steps.get()
    assert (step.state, step.duration_ms) == ("succeeded", 1500)


def test_a_log_batch_writes_the_numbering_and_heartbeat_and_nothing_else(service):
    deploy = _external(service)
    # What another writer changed after this batch's producer last read the deploy: not the batch's to undo.
    Deploy.objects.filter(pk=deploy.pk).update(cancel_requested_by="ops", progress=40, current_step="migrate")
    recorded = record(deploy.pk, [NewEvent("log", {"line": "a"}), NewEvent("log", {"line": "b"})])
    stored = Deploy.objects.get(pk=deploy.pk)
    assert (stored.last_seq, recorded.last_seq) == (deploy.last_seq + 2, deploy.last_seq + 2)
    # The heartbeat goes through the raw UPDATE: it must come back as the same aware instant.
    assert stored.heartbeat_at == recorded.deploy.heartbeat_at and stored.heartbeat_at > deploy.heartbeat_at
    assert (stored.cancel_requested_by, stored.progress, stored.current_step) == ("ops", 40, "migrate")


def test_the_deploy_update_writes_only_the_named_columns(service):
    from deploys.events import SEQ_FIELDS
    from herald.sql import update

    stale = _external(service)
    Deploy.objects.filter(pk=stale.pk).update(status="failed", cancel_requested_by="ops")
    stale.last_seq, stale.status = 99, "running"
    update(stale, SEQ_FIELDS)
    stored = Deploy.objects.get(pk=stale.pk)
    assert (stored.last_seq, stored.status, stored.cancel_requested_by) == (99, "failed", "ops")


def test_status_batches_still_name_the_service_and_environment(service, published):
    """The locked read no longer joins them in; the notices that name them load them when needed."""
    deploy = _external(service)
    record(deploy.pk, [NewEvent("status", {"status": "succeeded"})])
    notices = published[-1][3]
    assert [n["text"] for n in notices] == [f"{service.slug} v1 to production succeeded"]


def test_idempotency_key_stores_a_batch_once(service):
    deploy = _external(service)
    first = record(deploy.pk, [NewEvent("log", {"line": "a"})], idempotency_key="k1")
    again = record(deploy.pk, [NewEvent("log", {"line": "a"})], idempotency_key="k1")
    assert (again.first_seq, again.last_seq, again.duplicate) == (first.first_seq, first.last_seq, True)
    assert DeployEvent.objects.filter(deploy=deploy, kind="log").count() == 1


def test_the_suite_runs_on_the_database_it_was_given():
    """`make test` hands the suite a PostgreSQL URL; a silent fallback to SQLite would hide lock bugs."""
    import os

    from django.db import connection

    expected = "postgresql" if os.environ.get("HERALD_TEST_DATABASE_URL") else "sqlite"
    assert connection.vendor == expected


@pytest.fixture
def published(monkeypatch):
    """What publish_batch hands the channel layer, one (message, summary, notices) per batch."""
    from deploys import publisher

    sent = []

    def capture(deploy_id, message, summary, notices):
        sent.append((deploy_id, message, summary, notices))

    monkeypatch.setattr(publisher, "_send", capture)
    return sent


def test_a_log_only_batch_is_stored_numbered_and_published_without_a_summary(service, published):
    deploy = _external(service)
    record(deploy.pk, [NewEvent("step", {"index": 0, "name": "build", "state": "running"})])
    before = Deploy.objects.get(pk=deploy.pk)
    published.clear()
    recorded = record(deploy.pk, [NewEvent("log", {"line": f"l{i}", "stream": "stderr"}) for i in range(3)])
    assert (recorded.first_seq, recorded.last_seq) == (4, 6)
    stored = list(DeployEvent.objects.filter(deploy=deploy, seq__gte=4).order_by("seq"))
    assert [(e.seq, e.kind, e.data) for e in stored] == [
        (4 + i, "log", {"line": f"l{i}", "stream": "stderr"}) for i in range(3)
    ]
    assert [e.as_wire() for e in recorded.events] == [e.as_wire() for e in stored]
    [(deploy_id, message, summary, notices)] = published
    assert deploy_id == deploy.pk and summary is None and notices == []
    assert (message["first"], message["last"], message["summary"]) == (4, 6, None)
    assert message["events"] == [e.as_wire() for e in stored]
    after = Deploy.objects.get(pk=deploy.pk)
    assert after.last_seq == 6 and after.heartbeat_at >= before.heartbeat_at
    assert (after.status, after.current_step, after.progress) == ("running", "build", 0)
    step = after.steps.get()
    assert (step.state, step.started_at) == ("running", before.steps.get().started_at)


def test_a_step_and_status_batch_publishes_the_summary_of_what_was_stored(service, published):
    from deploys.summary import deploy_summary

    deploy = _external(service)
    record(deploy.pk, [NewEvent("step", {"index": 1, "name": "migrate", "state": "pending"})])
    published.clear()
    record(
        deploy.pk,
        [
            NewEvent("step", {"index": 0, "name": "build", "state": "running"}),
            NewEvent("progress", {"progress": 40}),
            NewEvent("log", {"line": "building"}),
            NewEvent("status", {"status": "failed", "reason": "boom"}),
        ],
    )
    [(_, message, summary, notices)] = published
    stored = deploy_summary(Deploy.objects.select_related("service", "environment").get(pk=deploy.pk))
    assert summary == message["summary"] == stored
    assert [(s["index"], s["state"]) for s in summary["steps"]] == [(0, "cancelled"), (1, "skipped")]
    assert (summary["status"], summary["progress"], summary["last_seq"]) == ("failed", 40, 7)
    assert [n["event"] for n in notices] == ["finished"]


def test_a_progress_only_batch_publishes_a_summary_with_the_steps(service, published):
    from deploys.summary import deploy_summary

    deploy = _external(service)
    record(deploy.pk, [NewEvent("step", {"index": 0, "name": "build", "state": "running"})])
    published.clear()
    record(deploy.pk, [NewEvent("progress", {"progress": 55})])
    [(_, message, summary, _notices)] = published
    assert summary == message["summary"] == deploy_summary(Deploy.objects.get(pk=deploy.pk))
    assert summary["progress"] == 55 and [s["name"] for s in summary["steps"]] == ["build"]


TRICKY_LINES = [
    "tab\there",
    "back\\slash \\N",
    'quote " and \\"',
    "cr\rlf\n",
    "é ✓ 漢字 🚀",
    "",
    "\\.",
    "a\x01b",
    "it's %s %(x)s",
]


@pytest.fixture(params=["insert", "copy"])
def stored_by(request, monkeypatch):
    """Run the test with every batch stored by one INSERT, then with every batch stored by COPY."""
    from deploys import events

    monkeypatch.setattr(events, "INSERT_MAX_ROWS", 1000 if request.param == "insert" else 0)
    return request.param


def test_a_few_events_are_inserted_and_more_are_copied(service):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deploys.events import INSERT_MAX_ROWS

    deploy = _external(service)
    for size, inserts in ((1, 1), (INSERT_MAX_ROWS, 1), (INSERT_MAX_ROWS + 1, 0)):
        with CaptureQueriesContext(connection) as queries:
            record(deploy.pk, [NewEvent("log", {"line": f"{size}/{i}"}) for i in range(size)])
        assert sum('INSERT INTO "deploys_deployevent"' in q["sql"] for q in queries) == inserts, size
    assert DeployEvent.objects.filter(deploy=deploy).count() == 2 + 1 + INSERT_MAX_ROWS + INSERT_MAX_ROWS + 1


def test_event_data_is_stored_as_jsonb_exactly_as_given(service, stored_by):
    deploy = _external(service)
    batch = [NewEvent("log", {"line": line, "stream": "stderr"}) for line in TRICKY_LINES]
    batch.append(NewEvent("comment", {"user": "rita", "text": "ok ✓"}))
    recorded = record(deploy.pk, batch)
    stored = list(DeployEvent.objects.filter(deploy=deploy, seq__gte=recorded.first_seq).order_by("seq"))
    assert [e.data for e in stored] == [{"line": line, "stream": "stderr"} for line in TRICKY_LINES] + [
        {"user": "rita", "text": "ok ✓"}
    ]
    assert [e.as_wire() for e in stored] == [e.as_wire() for e in recorded.events]
    # Stored as jsonb objects (not JSON strings): key lookups match as they would for an ORM insert.
    for line in TRICKY_LINES:
        assert DeployEvent.objects.filter(deploy=deploy, kind="log", data__line=line).count() == 1
    assert DeployEvent.objects.filter(deploy=deploy, data__user="rita").count() == 1


def test_data_postgresql_refuses_fails_the_whole_batch_with_a_django_error(service, stored_by):
    """jsonb refuses \\u0000 (the suite runs on PostgreSQL, see the last test)."""
    from django.db import DataError

    deploy = _external(service)
    with pytest.raises(DataError):
        record(deploy.pk, [NewEvent("log", {"line": "fine"}), NewEvent("log", {"line": "nul \x00 here"})])
    assert Deploy.objects.get(pk=deploy.pk).last_seq == 2
    assert DeployEvent.objects.filter(deploy=deploy).count() == 2
    assert record(deploy.pk, [NewEvent("log", {"line": "after"})]).last_seq == 3


def test_a_batch_with_its_own_timestamps_publishes_each_one(service, published, stored_by):
    """The runner passes the time each line was read; the wire form keeps every one of them."""
    from datetime import UTC, datetime, timedelta

    deploy = _external(service)
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    times = [start, start, start + timedelta(milliseconds=1), start + timedelta(seconds=1), start]
    published.clear()
    recorded = record(deploy.pk, [NewEvent("log", {"line": f"l{i}"}, ts) for i, ts in enumerate(times)])
    stored = list(DeployEvent.objects.filter(deploy=deploy, seq__gt=2).order_by("seq"))
    assert [e.ts for e in stored] == times
    [(_, message, _summary, _notices)] = published
    assert message["events"] == [e.as_wire() for e in stored]
    assert [e["ts"] for e in message["events"]] == [
        "2026-01-02T03:04:05.678Z",
        "2026-01-02T03:04:05.678Z",
        "2026-01-02T03:04:05.679Z",
        "2026-01-02T03:04:06.678Z",
        "2026-01-02T03:04:05.678Z",
    ]
    assert [(e.deploy, e.seq, e.ts, e.kind, e.data) for e in recorded.events] == [
        (deploy, e.seq, e.ts, e.kind, e.data) for e in stored
    ]


def test_each_stored_event_updates_two_indexes_only():
    """Every index is written for every event stored. (deploy, seq) leads with the deploy, so it serves
    lookups and cascades by deploy: a second index on the deploy alone would only cost inserts."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, DeployEvent._meta.db_table)
    indexed = sorted(tuple(c["columns"]) for c in constraints.values() if c["index"] or c["primary_key"] or c["unique"])
    assert indexed == [("deploy_id", "seq"), ("id",)], constraints
