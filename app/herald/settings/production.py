"""Production settings: base.py plus everything `manage.py check --deploy` asks for.

Secrets have no default here: a missing one stops startup with its variable's name.
"""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY")  # no default: refuse to start without it
DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
# daphne's app only swaps in its ASGI `runserver`, which production never runs (herald.wsserver serves
# /ws/). Installed, it imports daphne.server — Twisted's reactor and autobahn — into every uWSGI worker
# and Celery child: ≈ 0.7–1 s of CPU at each of their starts (docs/benchmarks.md).
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "daphne"]  # noqa: F405

# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-ssl-redirect
# nginx redirects port 80 itself; Django redirecting too is a second guard for direct hits.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# /healthz is probed over plain HTTP on loopback by the health gate and by supervisor checks.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=63072000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
