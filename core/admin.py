"""Admin for the shared plumbing: API keys (shown once, stored hashed) and the
idempotency records ops look at when a client says a retry misbehaved."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.errors import DomainError
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


def error_text(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


class ServiceSaveMixin:
    """Add and change forms saved through a service, never by `obj.save()`: the service
    locks the row and writes only what the form changed, so a counter that moved after
    the page was loaded is never written back (STYLE.md, Admin).

    Subclasses implement `save_via_service(request, obj, form, change)` and return the
    saved row. A refusal (a race the form could not see) becomes an error message and the
    form comes back; nothing is logged as changed."""

    def save_via_service(self, request, obj, form, change):  # pragma: no cover - abstract
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        try:
            saved = self.save_via_service(request, obj, form, change)
        except (DomainError, ValidationError) as exc:
            obj._service_error = error_text(exc)
            messages.error(
                request, f"The {self.opts.verbose_name} was not saved: {obj._service_error}"
            )
            return
        # The admin goes on with `obj` (log entry, redirect): give it the saved row.
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    def save_related(self, request, form, formsets, change):
        if not getattr(form.instance, "_service_error", None):
            super().save_related(request, form, formsets, change)
            return
        # Nothing was saved: the change message the admin builds next reads these.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def log_addition(self, request, obj, message):
        if not getattr(obj, "_service_error", None):
            return super().log_addition(request, obj, message)
        return None

    def log_change(self, request, obj, message):
        if not getattr(obj, "_service_error", None):
            return super().log_change(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(obj, "_service_error", None):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(obj, "_service_error", None):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)


def changed_fields(form) -> dict:
    """The model fields the admin form changed, with their cleaned values."""
    names = {f.name for f in form._meta.model._meta.concrete_fields}
    return {
        name: form.cleaned_data[name]
        for name in form.changed_data
        if name in form.cleaned_data and name in names
    }


class ApiKeyAdminForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="storefront: validate, apply and claim; admin: manage coupons.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    """The library's admin shows the generated key once, in a message, on creation."""

    form = ApiKeyAdminForm
    list_display = (*APIKeyModelAdmin.list_display, "scopes")  # type: ignore[assignment]
    list_filter = ("created", "revoked")  # type: ignore[assignment]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "scopes") if obj is not None and obj.revoked else fields


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: a record is the replayed response; editing it would change history."""

    list_display = ("principal", "key", "method", "path", "state", "response_status", "created_at")
    list_filter = ("state", "method", "created_at")
    search_fields = ["principal", "key", "path"]
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
