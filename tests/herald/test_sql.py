"""herald/sql.py: statements written once, whose rows read back exactly as the ORM reads them."""

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from deploys.models import ApiToken, Deploy, Environment, Service
from herald import sql

pytestmark = pytest.mark.django_db(transaction=True)


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _running_deploy(now) -> Deploy:
    """A deploy with most columns set, so a read that dropped or converted one wrongly shows it."""
    return Deploy.objects.create(
        service=Service.objects.create(slug="billing-api"),
        environment=Environment.objects.create(slug="production"),
        version="v9",
        status="running",
        started_at=now,
        heartbeat_at=now,
        progress=40,
        last_seq=12,
        cancel_requested_by="ops",
    )


def test_a_row_read_by_select_by_equals_the_orm_read():
    deploy = _running_deploy(timezone.now())
    [raw] = Deploy.objects.raw(sql.select_by(Deploy, "id", lock=True), [deploy.pk])
    assert _fields(raw) == _fields(Deploy.objects.get(pk=deploy.pk))
    token, _ = ApiToken.issue("ci", [ApiToken.Scope.WRITE])
    [raw_token] = ApiToken.objects.raw(sql.select_by(ApiToken, "key_id"), [token.key_id])
    assert _fields(raw_token) == _fields(ApiToken.objects.get(pk=token.pk))
    assert raw_token.scopes == [ApiToken.Scope.WRITE]  # JSON decoded, as the ORM does


def test_later_than_keeps_only_rows_past_the_given_instant():
    now = timezone.now()
    for key, offset in (("fresh", 60), ("stale", -60)):
        Session.objects.create(session_key=key, session_data="", expire_date=now + timezone.timedelta(seconds=offset))
    statement = sql.select_by(Session, "session_key", later_than="expire_date")
    at = Session._meta.get_field("expire_date").get_db_prep_value(now, connection)
    assert [s.session_key for s in Session.objects.raw(statement, ["fresh", at])] == ["fresh"]
    assert list(Session.objects.raw(statement, ["stale", at])) == []


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


def test_insert_into_writes_rows_of_the_named_columns_that_the_orm_reads_back():
    deploy = _running_deploy(timezone.now())
    quote = connection.ops.quote_name
    statement = sql.insert_into(Environment, ("slug", "order"), 2)
    assert statement == (
        f"INSERT INTO {quote('deploys_environment')} ({quote('slug')}, {quote('order')}) VALUES (%s, %s), (%s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, ["staging", 20, "qa-%s", 10])
    assert list(Environment.objects.exclude(pk=deploy.environment_id).values_list("slug", "order")) == [
        ("qa-%s", 10),
        ("staging", 20),
    ]


def test_first_reads_each_model_as_the_orm_does():
    """first() builds rows from its own plan, not a RawQuerySet: every field equal to the ORM's read, the
    JSON decoded by the field's converter, and the instance marked as loaded from the database."""
    from django.contrib.auth.models import User

    now = timezone.now()
    deploy = _running_deploy(now)
    token, _ = ApiToken.issue("ci", [ApiToken.Scope.WRITE])
    user = User.objects.create_user("ada", password="pw", email="ada@example.com", last_login=now)
    session = Session.objects.create(session_key="k1", session_data="x", expire_date=now + timezone.timedelta(1))
    at = Session._meta.get_field("expire_date").get_db_prep_value(now, connection)
    for model, found, expected in (
        (Deploy, sql.first(Deploy, sql.select_by(Deploy, "id", lock=True), [deploy.pk]), deploy),
        (ApiToken, sql.first(ApiToken, sql.select_by(ApiToken, "key_id"), [token.key_id]), token),
        (User, sql.first(User, sql.select_by(User, "id"), [user.pk]), user),
        (
            Session,
            sql.first(Session, sql.select_by(Session, "session_key", later_than="expire_date"), ["k1", at]),
            session,
        ),
    ):
        assert type(found) is model
        assert _fields(found) == _fields(model.objects.get(pk=expected.pk)), model
        assert not found._state.adding and found._state.db == "default"
    assert sql.first(ApiToken, sql.select_by(ApiToken, "key_id"), [token.key_id]).scopes == [ApiToken.Scope.WRITE]


def test_first_is_none_when_nothing_matches():
    assert sql.first(Deploy, sql.select_by(Deploy, "id"), [987654]) is None


def test_rows_reads_every_match_of_an_among_statement_as_first_reads_one():
    now = timezone.now()
    for key, offset in (("fresh-1", 60), ("fresh-2", 60), ("stale", -60), ("elsewhere", 60)):
        Session.objects.create(session_key=key, session_data=key, expire_date=now + timezone.timedelta(seconds=offset))
    statement = sql.select_by(Session, "session_key", later_than="expire_date", among=4)
    quote = connection.ops.quote_name
    assert f"{quote('session_key')} IN (%s, %s, %s, %s) AND" in statement
    at = Session._meta.get_field("expire_date").get_db_prep_value(now, connection)
    found = sql.rows(Session, statement, ["fresh-1", "fresh-2", "stale", "missing", at])
    assert sorted(s.session_key for s in found) == ["fresh-1", "fresh-2"]
    for session in found:
        assert _fields(session) == _fields(Session.objects.get(pk=session.pk))
        assert not session._state.adding
    assert sql.rows(Session, statement, ["a", "b", "c", "d", at]) == []
