"""Who opened a WebSocket: the session from the cookie and its user, looked up the way Django's HTTP
side does, with two differences from channels' Cookie/Session/AuthMiddleware that matter here.

1. A key rotation logs nobody out. channels 4.3's get_user() checks a session's auth hash against
   the current SECRET_KEY only and, on a mismatch, flushes the session. Right after `make
   rotate-secret SECRET=secret-key` every session still carries a hash made with the previous key,
   and a browser's first contact after the reload is often its socket reconnecting to a restarted
   daphne — so every user with an open page would be logged out, which is exactly what
   SECRET_KEY_FALLBACKS exists to prevent. Django's own get_user() accepts a fallback hash and
   re-hashes the session under a new session key; a socket cannot hand the browser a new cookie, so
   here a fallback hash is accepted and the session is left as it is: the browser's next HTTP request
   (uWSGI, django.contrib.auth) re-hashes it. A hash matching no key gives AnonymousUser without
   deleting anything — the HTTP side ends such a session on its next request.

2. The lookup runs after the handshake was accepted, inside the consumer's one database trip
   (deploys/consumers/base.py), not in middleware before it. daphne rejects a handshake its
   application has not accepted within its connect timeout, and every lookup queues on daphne's one
   database thread: when a restarted daphne took back thousands of sockets at once, each handshake
   waited behind the others' lookups, timed out after its work was done, and none came back (0 of
   2,000 resumed, docs/benchmarks.md). A socket only reads its session, so it needs none of
   channels' session middleware either — whose wrapper sat on every frame the socket sent and whose
   session object stayed in the scope for the socket's whole life.

3. Django's ModelBackend reads the user with a queryset compiled afresh for every socket (≈ 10 % of
   daphne's CPU in a reconnect storm, docs/benchmarks.md); for that backend the same row is read by
   a statement written once per process (herald/sql.py), and the same user_can_authenticate() rule
   applies. Any other backend's get_user() is called as Django calls it.

4. Sockets that connect together are looked up together (deploys/consumers/trips.py): their sessions
   in one statement and their users in another, instead of two round trips to PostgreSQL per socket
   (≈ 9 % of daphne's CPU in a reconnect storm went to psycopg's per-statement work, docs/benchmarks.md,
   7 December). Each socket still gets the answer it would get alone.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare

from . import sql
from .sessions import SessionStore as HeraldSessionStore


def session_key(scope: dict) -> str | None:
    """The session key from the handshake's Cookie header (as channels' CookieMiddleware reads it)."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME)
    return None


def user_for_session_key(key: str | None):
    """The signed-in user of the session `key`, else AnonymousUser (synchronous: the database thread)."""
    return users_for_session_keys([key])[0]


def users_for_session_keys(keys: list[str | None]) -> list:
    """user_for_session_key() of each key. With Herald's session engine the sessions are read in one
    statement, however many keys; with another engine, one session at a time."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if issubclass(store, HeraldSessionStore):
        found = store.decoded_many({key for key in keys if key})
        return users_for_sessions([found.get(key, {}) if key else {} for key in keys])
    return users_for_sessions([store(session_key=key) if key else {} for key in keys])


def user_for_session(session):
    """The session's user when its auth hash matches the current key or a fallback, else anonymous."""
    return users_for_sessions([session])[0]


def users_for_sessions(sessions: list) -> list:
    """user_for_session() of each session (a SessionStore or its decoded dict). The users of Django's
    ModelBackend are read in one statement, however many sessions; any other backend's get_user() is
    called for each, as Django calls it."""
    claims = [_claim(session) for session in sessions]
    rows = _model_backend_users({user_id for user_id, backend in filter(None, claims) if _reads_rows(backend)})
    users = []
    for session, claim in zip(sessions, claims, strict=True):
        user = None
        if claim is not None:
            user_id, backend = claim
            if _reads_rows(backend):
                user = rows.get(user_id)
                user = user if user is not None and backend.user_can_authenticate(user) else None
            else:
                user = backend.get_user(user_id)
        users.append(user if user is not None and _hash_matches(session, user) else AnonymousUser())
    return users


def _claim(session) -> tuple | None:
    """(user id, backend) the session says it was signed in with, if that backend is still configured."""
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    return user_id, load_backend(backend_path)


def _hash_matches(session, user) -> bool:
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    valid_hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(session_hash, valid) for valid in valid_hashes)


def _reads_rows(backend) -> bool:
    """Whether the backend's get_user() is ModelBackend's, which _model_backend_users() stands in for."""
    return type(backend).get_user is ModelBackend.get_user


def _model_backend_users(user_ids: set) -> dict:
    """ModelBackend.get_user() for each id, in one statement without compiling a queryset: id → user."""
    if not user_ids:
        return {}
    model = get_user_model()
    pk = model._meta.pk
    statement = sql.select_by(model, pk.name, among=len(user_ids))
    return {user.pk: user for user in sql.rows(model, statement, list(user_ids))}
