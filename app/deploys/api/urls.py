"""Ingest API routes, mounted at /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [
    path("deploys/", views.create_deploy, name="api-create-deploy"),
    path("deploys/<int:deploy_id>/", views.read_deploy, name="api-deploy"),
    path("deploys/<int:deploy_id>/events/", views.events, name="api-events"),
    path("deploys/<int:deploy_id>/progress/", views.progress, name="api-progress"),
    path("deploys/<int:deploy_id>/finish/", views.finish, name="api-finish"),
    path("deploys/<int:deploy_id>/log.txt", views.log_text, name="api-log-text"),
]
