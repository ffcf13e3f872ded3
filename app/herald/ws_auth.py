"""Who opened a WebSocket: channels' AuthMiddleware, with one difference that matters at a key rotation.

channels 4.3's get_user() checks a session's auth hash against the current SECRET_KEY only and, on a
mismatch, flushes the session. Right after `make rotate-secret SECRET=secret-key` every session still
carries a hash made with the previous key, and a browser's first contact after the reload is often
its socket reconnecting to a restarted daphne — so every user with an open page would be logged out,
which is exactly what SECRET_KEY_FALLBACKS exists to prevent. Django's own get_user() accepts a
fallback hash and re-hashes the session under a new session key; a socket cannot hand the browser a
new cookie, so here a fallback hash is accepted and the session is left as it is: the browser's next
HTTP request (uWSGI, django.contrib.auth) re-hashes it. A hash matching no key gives AnonymousUser
without deleting anything — the HTTP side ends such a session on its next request.

The lookup runs after the handshake was accepted, not in a middleware before it (channels' way).
daphne rejects a handshake its application has not accepted within 5 s (websocket_connect_timeout),
and every lookup queues on daphne's one database thread. When a restarted daphne took back thousands
of sockets at once, each handshake waited behind the others' lookups, passed 5 s and was rejected
after its work was done, and none came back: 0 of 2,000 resumed, all WSREJECT (docs/benchmarks.md).
Accepted first, a socket only waits its turn; an anonymous one is still closed with 4401 before it
is sent anything (deploys/consumers/base.py).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.models import AnonymousUser
from django.utils.crypto import constant_time_compare


@database_sync_to_async
def user_for_session(session):
    """The session's user when its auth hash matches the current key or a fallback, else anonymous."""
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return AnonymousUser()
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return AnonymousUser()
    valid_hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if any(constant_time_compare(session_hash, valid) for valid in valid_hashes):
        return user
    return AnonymousUser()


async def socket_user(scope: dict):
    """Look up the socket's user from its session and put it in the scope as `user`."""
    session = scope.get("session")
    scope["user"] = await user_for_session(session) if session is not None else AnonymousUser()
    return scope["user"]


def session_stack(inner):
    """Cookies and the session for a socket; the user comes later, from socket_user()."""
    return CookieMiddleware(SessionMiddleware(inner))
