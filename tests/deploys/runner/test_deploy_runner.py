"""deploys/runner/deploy_runner.py with real steps: events, batching, final status, cancel, redelivery."""

import sys
import threading
import time

import pytest
from django.db import connections

from deploys import operations
from deploys.models import Deploy, DeployEvent, Environment, Service, ServiceStep
from deploys.runner import deploy_runner

pytestmark = pytest.mark.django_db(transaction=True)


def make_service(*steps) -> Service:
    svc = Service.objects.create(slug="api")
    Environment.objects.get_or_create(slug="production")
    for position, (name, argv) in enumerate(steps):
        ServiceStep.objects.create(service=svc, position=position, name=name, argv=argv, timeout_seconds=30)
    return svc


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_deploy_runs_every_step_and_succeeds():
    svc = make_service(("build", py("for i in range(1000): print('line', i)")), ("ship", py("print('shipped')")))
    deploy = operations.start_deploy(svc, "production", "v1", started_by="rita", enqueue=False)
    assert deploy_runner.run_deploy(deploy.pk) == "succeeded"
    deploy.refresh_from_db()
    assert (deploy.status, deploy.progress) == ("succeeded", 100)
    lines = list(DeployEvent.objects.filter(deploy=deploy, kind="log").values_list("data__line", flat=True))
    assert lines == [f"line {i}" for i in range(1000)] + ["shipped"]
    seqs = list(DeployEvent.objects.filter(deploy=deploy).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    steps = list(deploy.steps.values_list("name", "state"))
    assert steps == [("build", "succeeded"), ("ship", "succeeded")]
    assert all(s.duration_ms is not None for s in deploy.steps.all())


def test_a_failing_step_fails_the_deploy_and_skips_the_rest():
    svc = make_service(("build", py("import sys; print('boom', file=sys.stderr); sys.exit(4)")), ("ship", ["true"]))
    deploy = operations.start_deploy(svc, "production", "v1", enqueue=False)
    assert deploy_runner.run_deploy(deploy.pk) == "failed"
    deploy.refresh_from_db()
    assert list(deploy.steps.values_list("state", flat=True)) == ["failed", "skipped"]
    last = DeployEvent.objects.filter(deploy=deploy).last()
    assert last.data == {"status": "failed", "reason": "step build failed"}
    assert DeployEvent.objects.filter(deploy=deploy, data__line="Step build exited with status 4.").exists()


def test_cancel_stops_a_step_that_ignores_sigint_and_records_who():
    ignore = "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    svc = make_service(("stubborn", py(ignore)), ("never", ["true"]))
    deploy = operations.start_deploy(svc, "production", "v1", enqueue=False)
    result = {}

    def run_in_worker():
        try:
            result["status"] = deploy_runner.run_deploy(deploy.pk, grace=0.5)
        finally:
            # As Celery's Django fix-up does after each task: else this thread's connection outlives
            # it, and the session cannot drop the test database at the end.
            connections.close_all()

    runner = threading.Thread(target=run_in_worker)
    runner.start()
    deadline = time.monotonic() + 10
    while not DeployEvent.objects.filter(deploy=deploy, data__line="up").exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    operations.request_cancel(deploy.pk, by="rita")
    runner.join(15)
    assert result["status"] == "cancelled"
    deploy.refresh_from_db()
    assert deploy.status == "cancelled" and deploy.cancel_requested_by == "rita"
    assert DeployEvent.objects.filter(deploy=deploy).last().data == {"status": "cancelled", "by": "rita"}
    assert list(deploy.steps.values_list("state", flat=True)) == ["cancelled", "skipped"]


def test_a_redelivered_task_for_a_finished_deploy_does_nothing():
    svc = make_service(("one", ["true"]))
    deploy = operations.start_deploy(svc, "production", "v1", enqueue=False)
    assert deploy_runner.run_deploy(deploy.pk) == "succeeded"
    count = DeployEvent.objects.filter(deploy=deploy).count()
    assert deploy_runner.run_deploy(deploy.pk) == ""
    assert DeployEvent.objects.filter(deploy=deploy).count() == count


def test_cancelling_a_queued_deploy_ends_it_at_once():
    svc = make_service(("one", ["true"]))
    deploy = operations.start_deploy(svc, "production", "v1", enqueue=False)
    assert operations.request_cancel(deploy.pk, by="rita").status == "cancelled"
    assert deploy_runner.run_deploy(deploy.pk) == ""


def test_housekeeping_marks_silent_running_deploys_interrupted(settings):
    from datetime import timedelta

    from django.utils import timezone

    svc = make_service(("one", ["true"]))
    stale = operations.start_deploy(svc, "production", "v1", enqueue=False)
    deploy_runner.claim(stale.pk)
    Deploy.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    fresh = operations.start_deploy(svc, "staging", "v1", enqueue=False)
    deploy_runner.claim(fresh.pk)
    settings.HERALD_INTERRUPTED_AFTER_SECONDS = 30
    assert operations.mark_interrupted() == [stale.pk]
    stale.refresh_from_db()
    assert stale.status == "interrupted" and stale.finished_at is not None
    assert Deploy.objects.get(pk=fresh.pk).status == "running"
    assert deploy_runner.run_deploy(stale.pk) == ""  # a late redelivery leaves the verdict alone


def test_the_lock_names_the_running_deploy():
    svc = make_service(("one", ["true"]))
    first = operations.start_deploy(svc, "production", "v1", started_by="rita", enqueue=False)
    with pytest.raises(operations.DeployLocked) as err:
        operations.start_deploy(svc, "production", "v2", enqueue=False)
    assert err.value.active.pk == first.pk and f"#{first.pk}" in err.value.message and "rita" in err.value.message


def test_an_unreachable_broker_fails_the_deploy_instead_of_holding_the_lock(settings):
    from deploys.events import EventError
    from herald.celery import app

    svc = make_service(("one", ["true"]))
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    retries, app.conf.broker_connection_max_retries = app.conf.broker_connection_max_retries, 1
    try:
        with pytest.raises(EventError) as err:
            operations.start_deploy(svc, "production", "v1")
    finally:
        app.conf.broker_connection_max_retries = retries
        # The producer pool was built for the dead URL: close it AND drop it, so the next task published
        # in this process gets a fresh pool for the real broker (a closed pool raises on every acquire).
        app.pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None  # built on the closed pool; Celery rebuilds it on next use
    assert err.value.status == 503 and err.value.code == "broker_unavailable"
    deploy = Deploy.objects.get(service=svc)
    assert (
        deploy.status == "failed" and "is Redis up?" in DeployEvent.objects.filter(deploy=deploy).last().data["reason"]
    )
    operations.start_deploy(svc, "production", "v2", enqueue=False)  # the lock is free again
