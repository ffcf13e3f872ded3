"""Deploy statuses and the transitions between them: the only place that says what may follow what."""

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the runner vanished (worker killed, host lost)


ACTIVE = frozenset({Status.QUEUED, Status.RUNNING})
FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})

_ALLOWED = {
    Status.QUEUED: {Status.RUNNING, Status.CANCELLED, Status.FAILED, Status.INTERRUPTED},
    Status.RUNNING: {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED},
}


class TransitionError(Exception):
    """A status change that the state machine forbids (for example anything after `succeeded`)."""


def check_transition(current: str, new: str) -> None:
    """Raise TransitionError unless a deploy in `current` may move to `new`."""
    if new not in Status.values:
        raise TransitionError(f"unknown status {new!r}; expected one of {', '.join(Status.values)}")
    if new not in _ALLOWED.get(Status(current), set()):
        if current in FINISHED:
            raise TransitionError(f"the deploy already ended {current}; it accepts no more changes")
        raise TransitionError(f"a {current} deploy cannot become {new}")


class StepState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
