"""What people and pipelines do to deploys: start one (under the lock), cancel, finish.

Pages, sockets, the API and the runner call these; every change still flows through events.record().
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .events import EventError, NewEvent, record
from .models import Deploy, Environment, Service
from .status import ACTIVE, FINISHED, Status

STATUS = "status"


class DeployLocked(EventError):
    """Another deploy of the same service to the same environment is queued or running."""

    def __init__(self, active: Deploy):
        super().__init__(
            "locked",
            f"{active.service.slug} is already being deployed to {active.environment.slug}: deploy "
            f"#{active.pk} ({active.version}, {active.status}, started by {active.started_by_label or 'unknown'})."
            " Wait for it to finish or cancel it.",
            409,
        )
        self.active = active


def start_deploy(
    service: Service | str,
    environment: Environment | str,
    version: str,
    *,
    user=None,
    started_by: str = "",
    runner: str = Deploy.Runner.CELERY,
    enqueue: bool = True,
) -> Deploy:
    """Create a deploy under the per-service+environment lock.

    A `celery` deploy is queued and handed to the runner; an `external` one (a pipeline reporting
    through the API) starts running at once. Raises DeployLocked naming the deploy that holds the lock.
    """
    if isinstance(service, str):
        service, _ = Service.objects.get_or_create(slug=service)
    if isinstance(environment, str):
        environment, _ = Environment.objects.get_or_create(slug=environment)
    if runner == Deploy.Runner.CELERY and not service.steps.exists():
        raise EventError("no_steps", f"service {service.slug} has no steps for Herald's runner to execute")
    label = (started_by or (user.get_username() if user else ""))[:200]
    try:
        with transaction.atomic():
            deploy = Deploy.objects.create(
                service=service,
                environment=environment,
                version=version[:200],
                runner=runner,
                started_by=user if user is not None and user.is_authenticated else None,
                started_by_label=label,
            )
    except IntegrityError:
        active = (
            Deploy.objects.select_related("service", "environment")
            .filter(service=service, environment=environment, status__in=sorted(ACTIVE))
            .first()
        )
        if active is None:  # it finished between our insert and this read: the lock is free now
            return start_deploy(
                service, environment, version, user=user, started_by=started_by, runner=runner, enqueue=enqueue
            )
        raise DeployLocked(active) from None
    opening = [NewEvent(STATUS, {"status": Status.QUEUED, "by": label} if label else {"status": Status.QUEUED})]
    if runner == Deploy.Runner.EXTERNAL:
        opening.append(NewEvent(STATUS, {"status": Status.RUNNING}))
    deploy = record(deploy.pk, opening).deploy
    if runner == Deploy.Runner.CELERY and enqueue:
        transaction.on_commit(lambda: _hand_to_runner(deploy.pk))
    return deploy


def _hand_to_runner(deploy_id: int) -> None:
    """Queue the Celery task. If the broker is unreachable the deploy fails at once, with the reason,
    instead of sitting `queued` forever while it holds the service+environment lock."""
    from .tasks import run_deploy  # the Celery wrapper; imported here to keep this module Celery-free

    try:
        run_deploy.delay(deploy_id)
    except Exception as exc:  # kombu raises several kinds for an unreachable broker
        reason = f"could not hand the deploy to a worker (is Redis up?): {exc}"[:500]
        record(deploy_id, [NewEvent(STATUS, {"status": Status.FAILED, "reason": reason})])
        raise EventError("broker_unavailable", reason, 503) from None


def request_cancel(deploy_id: int, by: str) -> Deploy:
    """Cancel a deploy. A queued or external one ends `cancelled` at once; a running Celery deploy is
    flagged, and the runner escalates SIGINT → SIGTERM → SIGKILL and records `cancelled` itself."""
    with transaction.atomic():
        deploy = Deploy.objects.select_for_update().get(pk=deploy_id)
        if deploy.status in FINISHED:
            raise EventError("deploy_finished", f"deploy {deploy.pk} already ended {deploy.status}", 409)
        immediate = deploy.status == Status.QUEUED or deploy.runner == Deploy.Runner.EXTERNAL
        if not deploy.cancel_requested_at:
            deploy.cancel_requested_by = by[:200]
            deploy.cancel_requested_at = timezone.now()
            deploy.save(update_fields=["cancel_requested_by", "cancel_requested_at"])
    if immediate:
        record(deploy_id, [NewEvent(STATUS, {"status": Status.CANCELLED, "by": by})])
    else:
        record(deploy_id, [NewEvent("log", {"line": f"Cancel requested by {by}.", "stream": "stderr"})])
    return Deploy.objects.get(pk=deploy_id)


def finish(deploy_id: int, status: str, by: str = "", reason: str = "") -> Deploy:
    """End a deploy with a final status (the API's /finish and the runner's last word)."""
    if status not in FINISHED:
        raise EventError("invalid_field", f"'status' must be one of {sorted(FINISHED)}")
    data = {"status": status}
    if by:
        data["by"] = by
    if reason:
        data["reason"] = reason
    return record(deploy_id, [NewEvent(STATUS, data)]).deploy


def mark_interrupted(now=None) -> list[int]:
    """End every running deploy whose producer went silent (housekeeping, run by Celery beat).

    Herald's runner heartbeats every HERALD_HEARTBEAT_SECONDS; an outside pipeline counts as alive
    while it sends events. Returns the ids it ended.
    """
    now = now or timezone.now()
    stale_runner = now - timedelta(seconds=settings.HERALD_INTERRUPTED_AFTER_SECONDS)
    stale_external = now - timedelta(seconds=settings.HERALD_EXTERNAL_IDLE_SECONDS)
    candidates = list(
        Deploy.objects.filter(
            status=Status.RUNNING, runner=Deploy.Runner.CELERY, heartbeat_at__lt=stale_runner
        ).values_list("pk", flat=True)
    ) + list(
        Deploy.objects.filter(
            status=Status.RUNNING, runner=Deploy.Runner.EXTERNAL, heartbeat_at__lt=stale_external
        ).values_list("pk", flat=True)
    )
    ended = []
    for pk in candidates:
        try:
            record(
                pk,
                [
                    NewEvent(
                        STATUS,
                        {
                            "status": Status.INTERRUPTED,
                            "reason": "no heartbeat from the runner; its worker or host was lost",
                        },
                    )
                ],
            )
            ended.append(pk)
        except EventError:
            pass  # it finished on its own meanwhile
    return ended
