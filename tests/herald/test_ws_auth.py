"""The WebSocket user lookup: sessions stay valid across a secret-key rotation and are never deleted."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

from herald.ws_auth import session_key, user_for_session, user_for_session_key, users_for_session_keys

pytestmark = pytest.mark.django_db(transaction=True)

# What the consumer's database trip calls (deploys/consumers/base.py).
lookup = user_for_session

OLD, NEW, OTHER = "old-key-" + "o" * 50, "new-key-" + "n" * 50, "other-key-" + "x" * 50


@pytest.fixture
def user():
    return User.objects.create_user("rel-eng", password="pw-not-used-here")


def signed_in_session(user, settings, key: str) -> SessionStore:
    """A saved session like django.contrib.auth.login() leaves, its auth hash made under `key`."""
    settings.SECRET_KEY = key
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return SessionStore(session_key=session.session_key)  # as the middleware loads it from the cookie


def test_a_session_hashed_under_the_current_key_is_its_user(user, settings):
    session = signed_in_session(user, settings, NEW)
    assert (lookup(session)).pk == user.pk


def test_a_session_hashed_under_a_fallback_key_is_still_its_user_and_is_left_alone(user, settings):
    session = signed_in_session(user, settings, OLD)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW, [OLD]
    assert (lookup(session)).pk == user.pk
    stored = SessionStore(session_key=session.session_key)
    assert stored.exists(session.session_key)  # same key: the browser's cookie stays good
    assert stored.load()[HASH_SESSION_KEY] == session[HASH_SESSION_KEY]


def test_a_session_hashed_under_a_retired_key_is_anonymous_but_not_deleted(user, settings):
    session = signed_in_session(user, settings, OTHER)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW, [OLD]
    assert (lookup(session)).is_anonymous
    assert SessionStore().exists(session.session_key)


def test_a_changed_password_ends_the_session(user, settings):
    session = signed_in_session(user, settings, NEW)
    user.set_password("a new password")
    user.save()
    assert (lookup(session)).is_anonymous


def test_an_empty_or_foreign_session_is_anonymous(user, settings):
    assert (lookup(SessionStore())).is_anonymous
    session = signed_in_session(user, settings, NEW)
    session[BACKEND_SESSION_KEY] = "somewhere.else.Backend"
    assert (lookup(session)).is_anonymous


def test_the_session_key_comes_from_the_cookie_header(settings):
    scope = {"headers": [(b"host", b"localhost"), (b"cookie", b"csrftoken=abc; sessionid=k123; theme=dark")]}
    assert session_key(scope) == "k123"
    assert session_key({"headers": [(b"cookie", b"csrftoken=abc")]}) is None
    assert session_key({"headers": []}) is None
    settings.SESSION_COOKIE_NAME = "herald_session"
    assert session_key({"headers": [(b"cookie", b"herald_session=other; sessionid=k123")]}) == "other"


def test_a_session_key_is_looked_up_in_the_configured_session_store(user, settings):
    session = signed_in_session(user, settings, NEW)
    assert user_for_session_key(session.session_key).pk == user.pk
    assert user_for_session_key("no-such-session-key").is_anonymous
    assert user_for_session_key(None).is_anonymous
    assert user_for_session_key("").is_anonymous


def test_the_user_read_is_djangos_user_without_a_compiled_queryset(user, settings, monkeypatch):
    """The raw read (ws_auth._get_user) gives the row Django's ModelBackend gives, field for field."""
    from django.db.models.sql.compiler import SQLCompiler

    session = signed_in_session(user, settings, NEW)
    expected = ModelBackend().get_user(user.pk)
    assert session[SESSION_KEY] == str(user.pk)  # the session is read here: only the user read is left

    def compiled(*args, **kwargs):
        raise AssertionError("the user must be read without compiling a queryset")

    monkeypatch.setattr(SQLCompiler, "as_sql", compiled)
    found = lookup(session)
    fields = [f.attname for f in User._meta.concrete_fields]
    assert [getattr(found, f) for f in fields] == [getattr(expected, f) for f in fields]


def test_an_inactive_or_deleted_user_is_anonymous(user, settings):
    session = signed_in_session(user, settings, NEW)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert lookup(session).is_anonymous
    User.objects.filter(pk=user.pk).delete()
    assert lookup(SessionStore(session_key=session.session_key)).is_anonymous


class OtherBackend(ModelBackend):
    """A backend with a get_user() of its own, which must be asked as Django asks it."""

    def get_user(self, user_id):
        return None if user_id == self.refused else super().get_user(user_id)


def test_a_backend_with_its_own_get_user_is_asked(user, settings):
    path = f"{__name__}.OtherBackend"
    settings.AUTHENTICATION_BACKENDS = [path]
    session = signed_in_session(user, settings, NEW)
    session[BACKEND_SESSION_KEY] = path
    OtherBackend.refused = None
    assert lookup(session).pk == user.pk
    OtherBackend.refused = user.pk
    assert lookup(session).is_anonymous


def test_sockets_looked_up_together_read_their_sessions_and_users_in_one_statement_each(
    user, settings, django_assert_num_queries
):
    second = User.objects.create_user("on-call", password="pw-not-used-here")
    first_key = signed_in_session(user, settings, NEW).session_key
    second_key = signed_in_session(second, settings, NEW).session_key
    foreign = signed_in_session(user, settings, NEW)
    foreign[BACKEND_SESSION_KEY] = "somewhere.else.Backend"
    foreign.save()
    keys = [first_key, None, second_key, "no-such-session-key", foreign.session_key, first_key, ""]
    with django_assert_num_queries(2):
        together = users_for_session_keys(keys)
    alone = [user_for_session_key(key) for key in keys]
    assert [u.pk for u in together] == [u.pk for u in alone] == [user.pk, None, second.pk, None, None, user.pk, None]


def test_another_session_engine_is_read_session_by_session(user, settings):
    key = signed_in_session(user, settings, NEW).session_key
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert [u.pk for u in users_for_session_keys([key, "no-such-session-key", key])] == [user.pk, None, user.pk]
