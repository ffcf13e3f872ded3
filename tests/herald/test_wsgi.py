"""herald.wsgi, what every uWSGI worker imports after the fork: it freezes the start-up heap, and with
production settings it loads neither daphne nor Twisted."""

from __future__ import annotations

import secrets

from .conftest import python_in_app

PROBE = "import gc, sys, herald.wsgi; print(gc.get_freeze_count(), 'daphne' in sys.modules, 'twisted' in sys.modules)"


def _import_wsgi(settings: str, **env: str) -> list[str]:
    return python_in_app(PROBE, DJANGO_SETTINGS_MODULE=settings, **env)


def test_a_worker_freezes_its_start_up_heap():
    frozen, _, _ = _import_wsgi("herald.settings.test")
    assert int(frozen) > 10_000  # Django's modules at least


def test_production_workers_load_no_daphne_or_twisted():
    production = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "herald.example.com"}
    _, daphne, twisted = _import_wsgi("herald.settings.production", **production)
    assert (daphne, twisted) == ("False", "False")
    # The test settings keep daphne's app for the browser tests' runserver; it imports Twisted there.
    assert _import_wsgi("herald.settings.test")[1:] == ["True", "True"]
