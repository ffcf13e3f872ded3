"""WebSocket URL patterns (daphne serves /ws/ only)."""

from django.urls import path

from .consumers.dashboard import DashboardConsumer
from .consumers.deploy import DeployConsumer
from .consumers.logfollow import LogFollowConsumer

websocket_urlpatterns = [
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
    path("ws/deploys/<int:deploy_id>/", DeployConsumer.as_asgi()),
    path("ws/logs/", LogFollowConsumer.as_asgi()),
]
