"""The ingest API (deploys/api/): auth, scopes, limits, idempotency, reads and the lock."""

import json

import pytest
from django.test import Client

from deploys.models import ApiToken, Deploy

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(scopes=("deploys:write", "deploys:read")) -> dict:
    _, plain = ApiToken.issue("ci", list(scopes))
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


def post(client, path, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **headers)


def create(client, auth, **overrides):
    body = {"service": "billing-api", "environment": "production", "version": "v2", **overrides}
    return post(client, "/api/v1/deploys/", body, **auth)


def test_create_append_read_and_finish():
    client, auth = Client(), bearer()
    created = create(client, auth, started_by="pipeline #12")
    assert created.status_code == 201
    deploy = created.json()
    assert (deploy["status"], deploy["last_seq"], deploy["started_by"]) == ("running", 2, "pipeline #12 (token:ci)")
    events = [{"kind": "log", "data": {"line": f"l{i}"}} for i in range(3)]
    appended = post(client, f"/api/v1/deploys/{deploy['id']}/events/", {"events": events}, **auth)
    assert appended.status_code == 202 and appended.json() == {"first_seq": 3, "last_seq": 5, "duplicate": False}
    assert (
        post(
            client, f"/api/v1/deploys/{deploy['id']}/progress/", {"progress": 50, "step": "migrate"}, **auth
        ).status_code
        == 202
    )
    read = client.get(f"/api/v1/deploys/{deploy['id']}/events/?after=4&limit=2", **auth).json()
    assert [e["seq"] for e in read["events"]] == [5, 6] and read["next_after"] == 6
    finished = post(client, f"/api/v1/deploys/{deploy['id']}/finish/", {"status": "succeeded"}, **auth)
    assert finished.status_code == 200 and finished.json()["status"] == "succeeded"
    assert finished.json()["steps"][0]["name"] == "migrate"
    late = post(client, f"/api/v1/deploys/{deploy['id']}/events/", {"events": events}, **auth)
    assert late.status_code == 409 and late.json()["error"]["code"] == "deploy_finished"
    text = client.get(f"/api/v1/deploys/{deploy['id']}/log.txt", **auth)
    assert b"".join(text.streaming_content).decode() == "l0\nl1\nl2\n"
    stamped = b"".join(client.get(f"/api/v1/deploys/{deploy['id']}/log.txt?timestamps=1", **auth).streaming_content)
    assert stamped.decode().splitlines()[0].endswith("Z l0")


def test_the_lock_refuses_a_second_deploy_and_names_the_first():
    client, auth = Client(), bearer()
    first = create(client, auth).json()
    second = create(client, auth, version="v3")
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "locked" and error["active_deploy"] == first["id"]
    assert f"#{first['id']}" in error["message"] and "v2" in error["message"]
    assert create(client, auth, environment="staging").status_code == 201  # other environment: free
    post(client, f"/api/v1/deploys/{first['id']}/finish/", {"status": "failed"}, **auth)
    assert create(client, auth, version="v3").status_code == 201  # lock released


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthenticated"),
        ("Basic abc", "bad_token"),
        ("Bearer nonsense", "bad_token"),
        ("Bearer hrld_000000000000_wrongsecret", "bad_token"),
    ],
)
def test_bad_credentials_get_401(header, code):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = create(Client(), headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == code


def test_a_right_key_id_with_a_wrong_secret_is_401():
    _, plain = ApiToken.issue("ci", ["deploys:write"])
    forged = plain.rsplit("_", 1)[0] + "_" + "A" * 43
    assert create(Client(), {"HTTP_AUTHORIZATION": f"Bearer {forged}"}).status_code == 401


def test_revoked_tokens_get_401():
    token, plain = ApiToken.issue("ci", ["deploys:write"])
    from django.core.management import call_command

    call_command("revoke_token", token.key_id)
    response = create(Client(), {"HTTP_AUTHORIZATION": f"Bearer {plain}"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "revoked_token"


def test_scopes_are_enforced_with_403():
    client = Client()
    read_only = bearer(["deploys:read"])
    assert create(client, read_only).status_code == 403
    deploy = create(client, bearer()).json()
    assert client.get(f"/api/v1/deploys/{deploy['id']}/", **read_only).status_code == 200
    write_only = bearer(["deploys:write"])
    response = client.get(f"/api/v1/deploys/{deploy['id']}/events/", **write_only)
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"


def test_limits_are_413():
    client, auth = Client(), bearer()
    deploy = create(client, auth).json()
    too_many = {"events": [{"kind": "log", "data": {"line": "x"}}] * 1001}
    response = post(client, f"/api/v1/deploys/{deploy['id']}/events/", too_many, **auth)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_events"
    too_big = {"events": [{"kind": "log", "data": {"line": "x" * 15000}}] * 80}
    response = post(client, f"/api/v1/deploys/{deploy['id']}/events/", too_big, **auth)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert Deploy.objects.get(pk=deploy["id"]).last_seq == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{oops", 400, "bad_json"),
        # JSON that Python's json module accepts but PostgreSQL's jsonb cannot store: refused at the door.
        ('{"events": [{"kind": "log", "data": {"line": "x", "n": NaN}}]}', 400, "bad_json"),
        ('{"events": [{"kind": "log", "data": {"line": "\\ud800"}}]}', 400, "bad_json"),
        ("[]", 400, "not_an_object"),
        ({"events": []}, 400, "missing_field"),
        ({"events": ["x"]}, 400, "invalid_field"),
        ({"events": [{"kind": "log", "data": {}}]}, 400, "missing_field"),
        ({"events": [{"kind": "warp", "data": {}}]}, 400, "invalid_field"),
    ],
)
def test_bad_batches_get_a_clear_json_error(body, status, code):
    client, auth = Client(), bearer()
    deploy = create(client, auth).json()
    response = post(client, f"/api/v1/deploys/{deploy['id']}/events/", body, **auth)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_a_retried_batch_with_the_same_idempotency_key_is_stored_once():
    client, auth = Client(), bearer()
    deploy = create(client, auth).json()
    body = {"events": [{"kind": "log", "data": {"line": "once"}}] * 3}
    first = post(client, f"/api/v1/deploys/{deploy['id']}/events/", body, HTTP_IDEMPOTENCY_KEY="b-1", **auth)
    retry = post(client, f"/api/v1/deploys/{deploy['id']}/events/", body, HTTP_IDEMPOTENCY_KEY="b-1", **auth)
    assert first.json()["last_seq"] == retry.json()["last_seq"] == 5 and retry.json()["duplicate"] is True
    assert Deploy.objects.get(pk=deploy["id"]).last_seq == 5


def test_unknown_deploy_is_a_json_404():
    response = Client().get("/api/v1/deploys/424242/", **bearer())
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_session_users_need_csrf_and_the_deploy_permission(engineer, watcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    assert create(client, {}).status_code == 403  # no CSRF token
    client.get("/api/v1/deploys/1/")  # any request sets no cookie; fetch one the standard way
    from django.middleware.csrf import get_token
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    assert create(client, {"HTTP_X_CSRFTOKEN": token}).status_code == 201
    other = Client()
    other.force_login(watcher)
    response = create(other, {}, service="other")
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"


def test_healthz_reports_each_check(redis_server):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_healthz_names_redis_when_it_is_down(settings):
    from deploys import redis as herald_redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    herald_redis.reset()
    response = Client().get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("error: ConnectionError")


@pytest.mark.parametrize(
    "events",
    [
        [{"kind": "log", "data": {"line": "x"}}],
        [{"kind": "warp", "data": {}}],  # a bad event: the unknown deploy is still what is reported
        [{"kind": "progress", "data": {"progress": 101}}],
    ],
)
def test_posting_events_to_an_unknown_deploy_is_a_json_404(events):
    response = post(Client(), "/api/v1/deploys/424242/events/", {"events": events}, **bearer())
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "deploy 424242 does not exist"}


def test_a_bad_event_for_a_known_deploy_is_still_a_400_and_a_finished_deploy_a_409():
    client, auth = Client(), bearer()
    deploy = create(client, auth).json()
    path = f"/api/v1/deploys/{deploy['id']}/events/"
    bad = post(client, path, {"events": [{"kind": "progress", "data": {"progress": 101}}]}, **auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_field"
    post(client, f"/api/v1/deploys/{deploy['id']}/finish/", {"status": "failed"}, **auth)
    late = post(client, path, {"events": [{"kind": "log", "data": {"line": "late"}}]}, **auth)
    assert late.status_code == 409 and late.json()["error"]["code"] == "deploy_finished"


async def test_a_full_api_batch_is_published_inline_and_arrives_complete(engineer, monkeypatch):
    """A 1000-event POST (MAX_EVENTS) goes to sockets in the channel message itself, in one frame,
    so no subscribed socket has to read the batch back from the database."""
    from asgiref.sync import sync_to_async

    from deploys import publisher
    from deploys.api.views import MAX_EVENTS
    from deploys.consumers import deploy as deploy_consumer

    from .conftest import Socket

    sent, reads = [], []
    send, events_after = publisher._send, deploy_consumer._events_after

    def spy_send(deploy_id, message, summary, notices):
        sent.append(message)
        send(deploy_id, message, summary, notices)

    async def spy_events_after(*args):
        reads.append(args)
        return await events_after(*args)

    monkeypatch.setattr(publisher, "_send", spy_send)
    monkeypatch.setattr(deploy_consumer, "_events_after", spy_events_after)
    client, auth = Client(), await sync_to_async(bearer)()
    deploy = (await sync_to_async(create)(client, auth)).json()
    sock = await Socket.open(f"/ws/deploys/{deploy['id']}/", engineer)
    await sock.recv_until("live")
    lines = [f"line {i} " + "x" * 110 for i in range(MAX_EVENTS)]
    body = {"events": [{"kind": "log", "data": {"line": line}} for line in lines]}
    response = await sync_to_async(post)(client, f"/api/v1/deploys/{deploy['id']}/events/", body, **auth)
    assert response.json() == {"first_seq": 3, "last_seq": 2 + MAX_EVENTS, "duplicate": False}
    frame = await sock.recv_until("events")
    assert [e["seq"] for e in frame["events"]] == list(range(3, 3 + MAX_EVENTS))
    assert [e["data"] for e in frame["events"]] == [{"line": line, "stream": "stdout"} for line in lines]
    assert sent[-1]["events"] == frame["events"] and reads == []
    await sock.close()
