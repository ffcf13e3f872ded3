"""herald/sessions.py: Django's database sessions, read the same way without a compiled query."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from herald.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_is_the_configured_engine():
    assert settings.SESSION_ENGINE == "herald.sessions"


def test_a_session_saved_by_djangos_store_reads_back_whole():
    """Sessions from before the switch (Django's own engine) stay valid: same table and encoding."""
    old = DjangoStore()
    old["user"], old["n"] = "rel-eng", 3
    old.save()
    session = SessionStore(session_key=old.session_key)
    assert (session["user"], session["n"], session.session_key) == ("rel-eng", 3, old.session_key)


def test_an_expired_or_unknown_session_is_empty_and_gets_a_new_key_on_save():
    stale = SessionStore()
    stale["user"] = "rel-eng"
    stale.save()
    Session.objects.filter(pk=stale.session_key).update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    for key in (stale.session_key, "no-such-session-key-at-all"):
        session = SessionStore(session_key=key)
        assert dict(session.items()) == {} and session.session_key is None
        session["x"] = 1
        session.save()
        assert session.session_key not in (None, key)


def test_many_sessions_are_decoded_as_each_loads_alone(django_assert_num_queries):
    stored = []
    for n in range(3):
        session = SessionStore()
        session["user"], session["n"] = f"user-{n}", n
        session.save()
        stored.append(session.session_key)
    Session.objects.filter(pk=stored[2]).update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    with django_assert_num_queries(1):
        found = SessionStore.decoded_many({*stored, "no-such-session-key-at-all"})
    assert found == {key: dict(SessionStore(session_key=key).items()) for key in stored[:2]}
    assert found[stored[1]] == {"user": "user-1", "n": 1}
    assert SessionStore.decoded_many(set()) == {}
