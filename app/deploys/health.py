"""GET /healthz: is the database reachable, is Redis? Says which failed (503) so a probe can tell."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import redis as herald_redis


@never_cache
@require_safe
def healthz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure is a failed check, reported by name
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    try:
        herald_redis.client().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ok else "failing", "checks": checks}, status=200 if ok else 503)
