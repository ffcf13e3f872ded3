"""Herald's data: services and their steps, deploys, their numbered events, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .status import ACTIVE, FINISHED, Status, StepState


class Environment(models.Model):
    """A place a service is deployed to (staging, production, …)."""

    slug = models.SlugField(max_length=64, unique=True)
    order = models.PositiveSmallIntegerField(default=100, help_text="Lower sorts first on the dashboard.")

    class Meta:
        ordering = ["order", "slug"]

    def __str__(self) -> str:
        return self.slug


class Service(models.Model):
    """A deployable thing. Services with steps can be run by Herald's own runner; services without
    steps are reported by outside pipelines through the ingest API."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def display_name(self) -> str:
        return self.name or self.slug


def _validate_argv(value) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise ValidationError('argv must be a non-empty JSON list of strings, e.g. ["./migrate.sh", "--fast"]')


def _validate_env(value) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError('environment must be a JSON object of strings, e.g. {"RAILS_ENV": "production"}')


class ServiceStep(models.Model):
    """One command of a service's deploy, run by the Celery runner. Only admins edit these: they are
    commands the workers execute."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    argv = models.JSONField(validators=[_validate_argv], help_text="Command and arguments, no shell.")
    timeout_seconds = models.PositiveIntegerField(default=600)
    environment = models.JSONField(default=dict, blank=True, validators=[_validate_env])

    class Meta:
        ordering = ["service", "position"]
        constraints = [models.UniqueConstraint(fields=["service", "position"], name="unique_step_position")]

    def __str__(self) -> str:
        return f"{self.service.slug}#{self.position} {self.name}"


class Deploy(models.Model):
    """One run of deploying a version of a service to an environment."""

    class Runner(models.TextChoices):
        CELERY = "celery"  # Herald's own runner executes the service's steps
        EXTERNAL = "external"  # an outside pipeline reports through the ingest API

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="deploys")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deploys")
    version = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    runner = models.CharField(max_length=16, choices=Runner.choices, default=Runner.CELERY)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Who or what started it, as shown to people: a username, "ci#1234", "ansible@ops-1".
    started_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    current_step = models.CharField(max_length=100, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    # The highest seq stored; the next event gets last_seq + 1 (allocated under the row lock).
    last_seq = models.PositiveIntegerField(default=0)
    # Last sign of life from the producer; housekeeping marks stale running deploys `interrupted`.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("start_deploy", "Can start and cancel deploys")]
        constraints = [
            # The deploy lock: at most one queued-or-running deploy per service and environment.
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(status__in=sorted(ACTIVE)),
                name="one_active_deploy_per_service_environment",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="deploy_status_heartbeat")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.service.slug} {self.version} → {self.environment.slug} ({self.status})"

    def get_absolute_url(self) -> str:
        return f"/deploys/{self.pk}/"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class DeployStep(models.Model):
    """A named phase of one deploy with its own state and duration (kept in step with `step` events)."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["deploy", "index"]
        constraints = [models.UniqueConstraint(fields=["deploy", "index"], name="unique_deploy_step_index")]

    def __str__(self) -> str:
        return f"{self.deploy_id}#{self.index} {self.name} ({self.state})"


class DeployEvent(models.Model):
    """One numbered record of a deploy. seq starts at 1 per deploy and has no gaps."""

    class Kind(models.TextChoices):
        STATUS = "status"
        STEP = "step"
        LOG = "log"
        PROGRESS = "progress"
        COMMENT = "comment"

    # No index of its own: the (deploy, seq) constraint's index leads with it, and serves every lookup
    # and cascade by deploy. A second one cost PostgreSQL ≈ 1.5 ms per 1,000-event batch (docs/benchmarks.md).
    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    ts = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    data = models.JSONField()

    class Meta:
        ordering = ["deploy", "seq"]
        constraints = [models.UniqueConstraint(fields=["deploy", "seq"], name="unique_deploy_event_seq")]

    def __str__(self) -> str:
        return f"{self.deploy_id}@{self.seq} {self.kind}"

    def as_wire(self) -> dict:
        """The event as sent to browsers and API clients (docs/protocol.md)."""
        return {"seq": self.seq, "ts": iso_ms(self.ts), "kind": self.kind, "data": self.data}


class IngestBatch(models.Model):
    """Remembers an Idempotency-Key so a retried POST returns the first answer and stores nothing."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="ingest_batches")
    key = models.CharField(max_length=200)
    first_seq = models.PositiveIntegerField()
    last_seq = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deploy", "key"], name="unique_ingest_batch_key")]

    def __str__(self) -> str:
        return f"{self.deploy_id} key={self.key} seq {self.first_seq}–{self.last_seq}"


class ApiToken(models.Model):
    """A bearer token for pipelines. Only a SHA-256 of the secret is stored: the secret is 32 random
    bytes, so a fast hash is enough (no dictionary to attack), and lookups stay cheap per request."""

    class Scope(models.TextChoices):
        WRITE = "deploys:write"
        READ = "deploys:read"

    PREFIX = "hrld"

    name = models.CharField(max_length=100, help_text="Who uses it, e.g. 'github-actions billing-api'.")
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str, scopes: list[str], created_by=None) -> tuple[ApiToken, str]:
        """Create a token; returns it and the plain text, which is shown once and never stored."""
        unknown = set(scopes) - set(cls.Scope.values)
        if unknown:
            raise ValueError(f"unknown scope(s) {sorted(unknown)}; expected {cls.Scope.values}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = cls.objects.create(
            name=name,
            key_id=key_id,
            secret_hash=cls.hash_secret(secret),
            scopes=sorted(set(scopes)),
            created_by=created_by,
        )
        return token, f"{cls.PREFIX}_{key_id}_{secret}"


def iso_ms(value) -> str | None:
    """UTC ISO-8601 with milliseconds and a Z, the one timestamp format on the wire."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
