"""Who is calling the ingest API: a bearer token (pipelines) or a logged-in session (CSRF applies)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from herald import sql

from ..models import ApiToken


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Caller:
    label: str  # shown as "started by"
    scopes: frozenset
    user: object = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(403, "missing_scope", f"this credential lacks the '{scope}' scope")


def _token_caller(header: str) -> Caller:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw:
        raise ApiError(401, "bad_token", "use 'Authorization: Bearer <token>'")
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != ApiToken.PREFIX:
        raise ApiError(401, "bad_token", "the token is malformed")
    # Read on every request, never cached, so a revocation applies to the very next one (raw SQL
    # built once, sql.py: compiling filter() per request was a fifth of a POST's CPU).
    token = sql.first(ApiToken, sql.select_by(ApiToken, "key_id"), [parts[1]])
    # Compare the hash in constant time even when the key id is unknown, so timing says nothing.
    expected = token.secret_hash if token else "0" * 64
    if not hmac.compare_digest(expected, ApiToken.hash_secret(parts[2])) or token is None:
        raise ApiError(401, "bad_token", "the token is not valid")
    if token.revoked_at:
        raise ApiError(401, "revoked_token", "the token was revoked")
    now = timezone.now()
    if not token.last_used_at or (now - token.last_used_at).total_seconds() > 60:  # one write a minute at most
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Caller(label=f"token:{token.name}", scopes=frozenset(token.scopes))


def _reject_csrf(request):
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})


def authenticate(request) -> Caller:
    """Token if an Authorization header is present; else the session user, with CSRF checked."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header:
        return _token_caller(header)
    user = request.user
    if not user.is_authenticated:
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>' or log in")
    if request.method not in ("GET", "HEAD", "OPTIONS") and _reject_csrf(request) is not None:
        raise ApiError(403, "csrf_failed", "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie")
    scopes = {ApiToken.Scope.READ}
    if user.has_perm("deploys.start_deploy"):
        scopes.add(ApiToken.Scope.WRITE)
    return Caller(label=user.get_username(), scopes=frozenset(scopes), user=user)
