"""Test settings: base.py with fast hashing, a quick housekeeping cadence and a known secret."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "!!! test secret, never used outside tests !!!"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only
# A file database, so threads and subprocesses in tests share it (an in-memory one is per connection).
DATABASES["default"].setdefault("TEST", {})["NAME"] = env(  # noqa: F405
    "HERALD_TEST_DB",
    default=str(VAR_DIR / "test-herald.sqlite3"),  # noqa: F405
)
CELERY_TASK_ALWAYS_EAGER = False
