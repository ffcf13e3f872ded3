"""ASGI entry point, served by daphne for /ws/ (WebSocket only; nginx sends HTTP to uWSGI)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "herald.settings.production")
# Set up Django (apps, models) before anything imports models through the consumers.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from deploys.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # daphne serves plain HTTP too when run alone (make run's fallback, tests); nginx never sends it.
        "http": django_asgi_app,
        # Origin check first: a page on another site must not open a socket with our session cookie.
        # The consumers read the session themselves (herald/ws_auth.py says why not channels' middleware).
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
