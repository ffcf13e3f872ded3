"""Herald settings, read from the environment in this one place.

Every variable is listed in docs/settings.md (variable → setting → development default → production).
Development defaults are safe on a laptop; production.py removes the defaults for secrets.
"""

import json
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent  # app/
env = environ.Env()

# herald.env names itself here (hosts, make run). supervisord's programs inherit the environment it
# started with, so re-reading the file at each process start is what lets `make reload` (uWSGI workers
# import settings after fork: lazy-apps; daphne and Celery restart) apply a changed file, a rotated
# secret included, without stopping Herald. The image has no herald.env; its environment is final.
if HERALD_ENV_FILE := env("HERALD_ENV_FILE", default=""):
    environ.Env.read_env(HERALD_ENV_FILE, overwrite=True)

# Where mutable state lives for a local run (SQLite file, media). Production points it at /var/lib/herald.
VAR_DIR = Path(env("HERALD_VAR_DIR", default=str(BASE_DIR.parent / "var")))

# ------------------------------------------------------------------------------
# CORE
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env("DJANGO_SECRET_KEY", default="!!!SET DJANGO_SECRET_KEY!!! (development only)")
# Keys retired by a rotation still verify sessions and signed values, so rotating logs nobody out.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key-fallbacks
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins (scheme://host[:port]) trusted for CSRF on HTTPS; e.g. https://herald.example.com
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

DJANGO_APPS = [
    "daphne",  # first, so `runserver` is the ASGI one
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = ["channels"]
LOCAL_APPS = ["deploys", "web"]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "herald.urls"
WSGI_APPLICATION = "herald.wsgi.application"
ASGI_APPLICATION = "herald.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# DATABASE
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
# SQLite is the embedded default for `make run`; production sets a postgres:// URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'herald.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent event writers queue on `timeout`
    # instead of failing with "database is locked" when a read transaction upgrades to a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
else:
    # Keep connections between requests (and between daphne's database_sync_to_async calls).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    # No health checks: with them on, every database_sync_to_async call in daphne (and every uWSGI
    # request) first pays a `SELECT 1` round trip — ≈ 8 % of a socket's connect cost on daphne's one
    # database thread (docs/benchmarks.md). A connection PostgreSQL dropped fails one call instead;
    # Django then discards it (close_old_connections after the error) and the next call reconnects.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------------
# AUTH
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ------------------------------------------------------------------------------
# I18N / TIME: event timestamps are UTC with milliseconds.
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------------
# STATIC: collected into STATIC_ROOT and served by nginx, never by Django in production.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("HERALD_STATIC_ROOT", default=str(VAR_DIR / "static")))

# ------------------------------------------------------------------------------
# SECURITY (production.py hardens further)
# Django's database sessions, read without compiling a query per request (herald/sessions.py).
SESSION_ENGINE = "herald.sessions"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# nginx overwrites X-Forwarded-Proto with $scheme, so trusting it is safe behind nginx only.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# ------------------------------------------------------------------------------
# REDIS: one instance is both the channel layer and the Celery broker (maxmemory-policy noeviction).
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

# https://github.com/django/channels_redis#configuration
# RedisPubSubChannelLayer, not RedisChannelLayer: the list-based layer copies a group message into one
# Redis list per member and runs a receive loop per socket. Same run, same client (docs/benchmarks.md):
# idle CPU with 1,500 sockets 2.4 % vs 44.8 %, 1.8x the delivered events per server CPU-second in
# fan-out to 1,000 sockets, 58.6 vs 65.5 KiB per socket. Pub/sub has no capacity or expiry (nothing is
# dropped on purpose) and no group_expiry (membership lives as long as the process); a message
# published while a daphne is cut off from Redis is lost, which consumers already repair from the
# database by seq at the next message or ping.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "herald:asgi"},
    }
}

# ------------------------------------------------------------------------------
# CELERY (https://docs.celeryq.dev/en/stable/userguide/configuration.html)
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # results live in the database as deploy events, not in Celery
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A deploy is long; acking late means a task whose worker dies is redelivered instead of lost. The
# tasks are idempotent: run_deploy only starts a deploy that is still `queued`.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longest deploy we allow; the hard limit kills a runaway task, the soft one lets it clean up first.
HERALD_MAX_DEPLOY_SECONDS = env.int("HERALD_MAX_DEPLOY_SECONDS", default=3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = HERALD_MAX_DEPLOY_SECONDS
CELERY_TASK_TIME_LIMIT = HERALD_MAX_DEPLOY_SECONDS + 120
# The visibility timeout must exceed the longest acks_late runtime, or Redis redelivers a task that
# is still running (celery docs, backends-and-brokers/redis.rst). Set on the broker and on the
# result/producer transport options as the docs list.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS
CELERY_VISIBILITY_TIMEOUT = CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
# Deliberately not the checklist's True: that setting cancels running tasks when the broker connection
# drops, so a two-second Redis blip would kill a half-done deploy. Our tasks are idempotent instead
# (run_deploy only starts a `queued` deploy), so a redelivery after the blip does nothing, and the deploy's
# own events go to the database first and reach browsers once Redis is back.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Recycle children so a leak in a step's output handling cannot grow forever (KiB).
CELERY_WORKER_MAX_TASKS_PER_CHILD = 100
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 512 * 1024
# Warm shutdown: give running deploys this long, then requeue unacked work (Celery ≥ 5.5).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 30
CELERY_TASK_DEFAULT_QUEUE = "deploys"
# Deploys hold a prefork slot for minutes; log follows hold one for hours. Housekeeping and log follows
# go to a thread-pool worker of their own (supervisor's worker-io), so neither can starve the other.
CELERY_TASK_ROUTES = {"deploys.tasks.mark_interrupted_deploys": {"queue": "housekeeping"}}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# ------------------------------------------------------------------------------
# HERALD
# Seconds between runner heartbeats, and how stale a heartbeat may get before housekeeping marks
# the deploy `interrupted` (its worker was killed or its host lost).
HERALD_HEARTBEAT_SECONDS = env.float("HERALD_HEARTBEAT_SECONDS", default=5.0)
HERALD_INTERRUPTED_AFTER_SECONDS = env.float("HERALD_INTERRUPTED_AFTER_SECONDS", default=30.0)
HERALD_HOUSEKEEPING_SECONDS = env.float("HERALD_HOUSEKEEPING_SECONDS", default=10.0)
# An outside pipeline that sent nothing for this long is taken as gone (its deploy ends `interrupted`).
HERALD_EXTERNAL_IDLE_SECONDS = env.float("HERALD_EXTERNAL_IDLE_SECONDS", default=3600.0)
CELERY_BEAT_SCHEDULE = {
    "mark-interrupted-deploys": {
        "task": "deploys.tasks.mark_interrupted_deploys",
        "schedule": HERALD_HOUSEKEEPING_SECONDS,
    },
}
# This host's name for log following: the log-follow task for a host goes to queue `logs.<name>`.
HERALD_HOST_NAME = env("HERALD_HOST_NAME", default="local")
# Whitelisted log files per host: {"host": {"name": "/path"}}. Nothing outside it can be followed.
HERALD_LOG_FILES = json.loads(env("HERALD_LOG_FILES", default="{}"))
# Runner output batching: flush at least this often, or at this many lines.
HERALD_BATCH_SECONDS = 0.1
HERALD_BATCH_LINES = 300

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("HERALD_LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
