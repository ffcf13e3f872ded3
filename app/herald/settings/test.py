"""Test settings: base.py with fast hashing and a known secret."""

from .base import *  # noqa: F403
from .base import DATABASES, VAR_DIR, env

SECRET_KEY = "!!! test secret, never used outside tests !!!"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only

if env("HERALD_TEST_DATABASE_URL", default=""):
    # `make test` runs the suite on PostgreSQL, production's database: row locks allocate seq there.
    DATABASES = {"default": env.db("HERALD_TEST_DATABASE_URL")}
else:
    # A file database, so threads and subprocesses in tests share it (an in-memory one is per connection).
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env(
        "HERALD_TEST_DB", default=str(VAR_DIR / "test-herald.sqlite3")
    )
CELERY_TASK_ALWAYS_EAGER = False
