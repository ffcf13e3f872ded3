"""The one synchronous Redis client of a process (notice de-duplication, log-follow leases, health).

Created lazily and again after a fork: uWSGI (lazy-apps) and Celery's prefork children must never
share a socket opened by their parent.
"""

import os

import redis
from django.conf import settings

_client: redis.Redis | None = None
_pid: int | None = None


def client() -> redis.Redis:
    global _client, _pid
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        _pid = os.getpid()
    return _client


def reset() -> None:
    """Forget the client (tests point REDIS_URL at a new server)."""
    global _client
    _client = None
