"""HTTP routes served by uWSGI. WebSocket routes are in deploys/routing.py (daphne)."""

from django.contrib import admin
from django.urls import include, path

from deploys.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("deploys.api.urls")),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
