"""WSGI entry point, served by uWSGI for every HTTP path except /ws/."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings.production")
application = get_wsgi_application()
