"""Entitlements in the admin: features, grants (with their history), usage and
reservations (read-only: they move only through reserve / release)."""

from __future__ import annotations

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from entitlements.models import EntitlementEvent, Feature, Grant, Reservation, Usage


@admin.register(Feature)
class FeatureAdmin(SimpleHistoryAdmin):
    list_display = ("key", "name", "type")
    list_filter = ("type",)
    search_fields = ["key", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ("key", "type") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False  # plans and grants refer to features by key


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ("customer_id", "feature", "value", "expires_at", "revoked_at", "created_at")
    list_filter = ("feature",)
    list_select_related = ("feature",)
    search_fields = ["customer_id"]
    readonly_fields = [f.name for f in Grant._meta.fields]

    def has_add_permission(self, request):
        return False  # grants are made through the API (services.grant_create)

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EntitlementEvent)
class EntitlementEventAdmin(_ReadOnly):
    list_display = ("occurred_at", "customer_id", "kind", "feature_key")
    list_filter = ("kind",)
    search_fields = ["customer_id"]


@admin.register(Usage)
class UsageAdmin(_ReadOnly):
    list_display = ("customer_id", "feature", "used", "updated_at")
    list_select_related = ("feature",)
    list_filter = ("feature",)
    search_fields = ["customer_id"]


@admin.register(Reservation)
class ReservationAdmin(_ReadOnly):
    list_display = ("customer_id", "feature", "resource_id", "quantity", "created_at")
    list_select_related = ("feature",)
    list_filter = ("feature",)
    search_fields = ["customer_id", "resource_id"]
