"""The ingest API for outside pipelines (docs/protocol.md). JSON in and out; errors carry a code.

Views only translate HTTP to operations/events calls: every event is still stored and published
by events.record().
"""

from __future__ import annotations

from functools import wraps

import orjson
from django.http import JsonResponse, StreamingHttpResponse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt

from .. import operations
from ..events import EventError, NewEvent, events_after, record
from ..models import ApiToken, Deploy, DeployEvent, iso_ms
from ..status import FINISHED
from ..summary import deploy_summary
from .auth import ApiError, Caller, authenticate

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
MAX_READ_PAGE = 1000
WRITE, READ = ApiToken.Scope.WRITE, ApiToken.Scope.READ


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def api_view(scopes: dict[str, str]):
    """Authenticate, enforce the method and its scope ({"POST": write, …}), parse JSON, and turn
    errors into JSON answers.

    CSRF is checked by auth.authenticate() for session callers only; token callers have no cookie
    for a forged request to ride on.
    """

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in scopes:
                return error(405, "method_not_allowed", f"use {' or '.join(scopes)}")
            try:
                caller = authenticate(request)
                caller.require(scopes[request.method])
                body = None
                if request.method == "POST":
                    length = int(request.META.get("CONTENT_LENGTH") or 0)
                    if length > MAX_BODY_BYTES:
                        raise ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
                    try:
                        body = orjson.loads(request.body or b"null")
                    except orjson.JSONDecodeError:
                        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
                    if not isinstance(body, dict):
                        raise ApiError(400, "not_an_object", "the body must be a JSON object")
                return view(request, caller, body, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.code, exc.message)
            except EventError as exc:
                payload = {"code": exc.code, "message": exc.message}
                if isinstance(exc, operations.DeployLocked):
                    payload["active_deploy"] = exc.active.pk
                return JsonResponse({"error": payload}, status=exc.status)

        return wrapper

    return decorate


def _text(body: dict, name: str, max_length: int, required: bool = True) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"'{name}' is required")
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"'{name}' must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(400, "field_too_long", f"'{name}' is longer than {max_length} characters")
    return value.strip()


def _deploy(deploy_id: int) -> Deploy:
    deploy = Deploy.objects.select_related("service", "environment").filter(pk=deploy_id).first()
    if deploy is None:
        raise ApiError(404, "not_found", f"deploy {deploy_id} does not exist")
    return deploy


@api_view({"POST": WRITE})
def create_deploy(request, caller: Caller, body: dict):
    service = _text(body, "service", 64)
    environment = _text(body, "environment", 64)
    version = _text(body, "version", 200)
    started_by = _text(body, "started_by", 150, required=False)
    if slugify(service) != service or slugify(environment) != environment:
        raise ApiError(400, "invalid_field", "'service' and 'environment' must be slugs like billing-api")
    label = f"{started_by} ({caller.label})" if started_by else caller.label
    deploy = operations.start_deploy(
        service, environment, version, user=caller.user, started_by=label, runner=Deploy.Runner.EXTERNAL
    )
    return JsonResponse(deploy_summary(deploy), status=201)


@api_view({"GET": READ})
def read_deploy(request, caller: Caller, body, deploy_id: int):
    return JsonResponse(deploy_summary(_deploy(deploy_id)))


@api_view({"POST": WRITE, "GET": READ})
def events(request, caller: Caller, body, deploy_id: int):
    if request.method == "GET":
        return _read_events(request, deploy_id)
    items = body.get("events")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "missing_field", "'events' must be a non-empty list")
    if len(items) > MAX_EVENTS:
        raise ApiError(413, "too_many_events", f"at most {MAX_EVENTS} events per request; split the batch")
    batch = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_field", f"event {i} must be an object")
        batch.append(NewEvent(str(item.get("kind")), item.get("data")))
    key = request.headers.get("Idempotency-Key", "")[:200] or None
    # No lookup of the deploy first: record() locks it anyway and answers not_found (404) for an unknown
    # one, which saved a query per POST. It validates the batch before locking, though, so when it
    # refuses a batch, look the deploy up then: an unknown deploy still answers 404 before a bad event.
    try:
        recorded = record(deploy_id, batch, idempotency_key=key)
    except EventError as exc:
        if exc.status != 404 and not Deploy.objects.filter(pk=deploy_id).exists():
            raise ApiError(404, "not_found", f"deploy {deploy_id} does not exist") from None
        raise
    return JsonResponse(
        {"first_seq": recorded.first_seq, "last_seq": recorded.last_seq, "duplicate": recorded.duplicate},
        status=202,
    )


def _read_events(request, deploy_id: int):
    _deploy(deploy_id)
    try:
        after = int(request.GET.get("after", 0))
        limit = min(int(request.GET.get("limit", MAX_READ_PAGE)), MAX_READ_PAGE)
    except ValueError:
        raise ApiError(400, "invalid_field", "'after' and 'limit' must be whole numbers") from None
    if after < 0 or limit < 1:
        raise ApiError(400, "invalid_field", "'after' must be ≥ 0 and 'limit' ≥ 1")
    rows = events_after(deploy_id, after, limit)
    next_after = rows[-1].seq if len(rows) == limit else None
    return JsonResponse({"events": [r.as_wire() for r in rows], "next_after": next_after})


@api_view({"POST": WRITE})
def progress(request, caller: Caller, body: dict, deploy_id: int):
    value = body.get("progress")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, "missing_field", "'progress' (a whole number 0–100) is required")
    batch = [NewEvent("progress", {"progress": value})]
    step = body.get("step")
    if step is not None:
        deploy = _deploy(deploy_id)
        known = {s.name: s.index for s in deploy.steps.all()}
        index = known.get(step, len(known))
        batch.insert(0, NewEvent("step", {"index": index, "name": str(step), "state": "running"}))
    recorded = record(deploy_id, batch)
    return JsonResponse({"last_seq": recorded.last_seq}, status=202)


@api_view({"POST": WRITE})
def finish(request, caller: Caller, body: dict, deploy_id: int):
    status = _text(body, "status", 20)
    if status not in FINISHED or status == "interrupted":
        raise ApiError(400, "invalid_field", "'status' must be succeeded, failed or cancelled")
    _deploy(deploy_id)
    deploy = operations.finish(deploy_id, status, by=caller.label, reason=_text(body, "reason", 500, False))
    return JsonResponse(deploy_summary(deploy))


@api_view({"GET": READ})
def log_text(request, caller: Caller, body, deploy_id: int):
    """The whole log as plain text (the page's "raw log" link), streamed in pages."""
    deploy = _deploy(deploy_id)
    with_ts = request.GET.get("timestamps") in ("1", "true", "yes")

    def lines():
        after = 0
        while True:
            page = list(
                DeployEvent.objects.filter(deploy=deploy, seq__gt=after, kind=DeployEvent.Kind.LOG)
                .order_by("seq")
                .values_list("seq", "ts", "data")[:2000]
            )
            if not page:
                return
            for _seq, ts, data in page:
                line = data.get("line", "")
                if with_ts:
                    yield f"{iso_ms(ts)} {line}\n"
                else:
                    yield f"{line}\n"
            after = page[-1][0]

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    name = f"{deploy.service.slug}-{deploy.version}-{deploy.pk}.log".replace("/", "_")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
