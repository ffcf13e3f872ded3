from django.apps import AppConfig


class DeploysConfig(AppConfig):
    """Deploys, their numbered events, the live sockets, the runner and the ingest API."""

    name = "deploys"
    default_auto_field = "django.db.models.BigAutoField"
