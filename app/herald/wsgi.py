"""WSGI entry point, served by uWSGI for every HTTP path except /ws/."""

import os

from django.core.wsgi import get_wsgi_application

from herald.heap import freeze_startup_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings.production")
application = get_wsgi_application()
# Each worker imports this module after the fork (lazy-apps), so each freezes its own start-up heap.
freeze_startup_heap()
