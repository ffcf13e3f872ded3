"""Django admin: only admins define services and their steps, because steps are commands workers run."""

from django.contrib import admin

from .models import ApiToken, Deploy, Environment, Service, ServiceStep


class ServiceStepInline(admin.TabularInline):
    model = ServiceStep
    extra = 0
    ordering = ["position"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    search_fields = ["slug", "name"]
    inlines = [ServiceStepInline]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["slug", "order"]


@admin.register(Deploy)
class DeployAdmin(admin.ModelAdmin):
    list_display = ["id", "service", "environment", "version", "status", "started_by_label", "created_at"]
    list_filter = ["status", "environment", "service"]
    # Deploys change only through events (deploys/events.py); the admin shows them read-only.
    readonly_fields = [f.name for f in Deploy._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "key_id", "scopes", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["key_id", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        from django.utils import timezone

        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request):
        return False  # issue tokens with `manage.py create_token`: the secret is shown once there
