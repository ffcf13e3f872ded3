from django.apps import AppConfig


class WebConfig(AppConfig):
    """The release engineer's pages: login, dashboard, deploy page, log-follow page."""

    name = "web"
