"""Page URLs (the web app owns them)."""

urlpatterns: list = []
