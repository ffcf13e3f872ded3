"""Page URLs (the web app owns them). Sockets are routed in deploys/routing.py."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html",
                                                redirect_authenticated_user=True), name="login"),
    # Django 5 logs out on POST only (a GET link could be triggered by any page); the header has a form.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("deploys/start/", views.start, name="start_deploy"),
    path("deploys/<int:pk>/", views.deploy_page, name="deploy"),
    path("logs/", views.logs_page, name="logs"),
]
