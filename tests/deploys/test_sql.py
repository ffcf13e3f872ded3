"""deploys/sql.py: the hot path's statements, written once, read back exactly as the ORM reads them."""

import pytest
from django.db import connection
from django.utils import timezone

from deploys import sql
from deploys.models import ApiToken, Deploy, Environment

pytestmark = pytest.mark.django_db(transaction=True)


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_a_row_read_by_select_by_equals_the_orm_read(service):
    now = timezone.now()
    deploy = Deploy.objects.create(
        service=service,
        environment=Environment.objects.get(slug="production"),
        version="v9",
        status="running",
        started_at=now,
        heartbeat_at=now,
        progress=40,
        last_seq=12,
        cancel_requested_by="ops",
    )
    [raw] = Deploy.objects.raw(sql.select_by(Deploy, "id", lock=True), [deploy.pk])
    assert _fields(raw) == _fields(Deploy.objects.get(pk=deploy.pk))
    token, _ = ApiToken.issue("ci", [ApiToken.Scope.WRITE])
    [raw_token] = ApiToken.objects.raw(sql.select_by(ApiToken, "key_id"), [token.key_id])
    assert _fields(raw_token) == _fields(ApiToken.objects.get(pk=token.pk))
    assert raw_token.scopes == [ApiToken.Scope.WRITE]  # JSON decoded, as the ORM does


def test_only_a_locking_select_asks_for_the_row_lock():
    locked = sql.select_by(Deploy, "id", lock=True)
    assert ("FOR UPDATE" in locked) == connection.features.has_select_for_update
    assert "FOR UPDATE" not in sql.select_by(Deploy, "id")


def test_update_by_pk_sets_exactly_the_named_columns_in_order():
    statement = sql.update_by_pk(Deploy, ("last_seq", "heartbeat_at"))
    quote = connection.ops.quote_name
    assert statement == (
        f"UPDATE {quote('deploys_deploy')} SET {quote('last_seq')} = %s, {quote('heartbeat_at')} = %s "
        f"WHERE {quote('id')} = %s"
    )
