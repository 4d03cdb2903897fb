"""Admin screens: a client of services and selectors. Issue #5 builds the full editor; until
then the admin lets staff look at the registry, and nothing in it can bypass the services."""

from django.contrib import admin

from .models import AuditEvent, KeyDefinition, Layer, LayerVersion, ServiceToken


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is changed only through services (publish, rollback, audit_record)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Layer)
class LayerAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "level", "current_version", "updated_by", "updated_at"]
    list_filter = ["level"]
    search_fields = ["name", "description"]


@admin.register(LayerVersion)
class LayerVersionAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "revision", "author", "created_at", "comment"]
    list_filter = ["layer__level"]
    search_fields = ["layer__name", "author", "comment"]


@admin.register(KeyDefinition)
class KeyDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["key", "secret", "has_default", "updated_by", "updated_at"]
    search_fields = ["key", "description"]


@admin.register(ServiceToken)
class ServiceTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "scopes", "expires_at", "revoked_at", "last_used_at"]
    exclude = ["token_hash"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "at", "actor", "action", "target", "source"]
    list_filter = ["action"]
    search_fields = ["actor", "target"]
