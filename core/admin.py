"""Admin for the shared plumbing: API keys (shown once, stored hashed) and the
idempotency records ops look at when a client says a retry misbehaved."""

from django import forms
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.models import ApiKey, IdempotencyRecord, Scope

admin.site.site_header = "Growth engine"
admin.site.site_title = "Growth engine admin"

# The library registers its own APIKey model, which nothing here authenticates with
# (core.auth reads core.models.ApiKey); a second "API keys" screen would only mislead.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class ReadOnlyAdminMixin:
    """Rows written only by the engine: staff may look, never add, edit or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple,
        help_text="storefront: validate, apply and claim; admin: manage coupons.")

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    """The library's admin shows the generated key once, in a message, on creation."""

    form = ApiKeyAdminForm
    list_display = (*APIKeyModelAdmin.list_display, "scopes")
    list_filter = ("created", "revoked")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "scopes") if obj is not None and obj.revoked else fields


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: a record is the replayed response; editing it would change history."""

    list_display = ("principal", "key", "method", "path", "state", "response_status",
                    "created_at")
    list_filter = ("state", "method", "created_at")
    search_fields = ["principal", "key", "path"]
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
