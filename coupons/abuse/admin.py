"""Abuse alerts for marketing: every automatic action and flag, reviewable."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from coupons.abuse import services
from coupons.abuse.models import AbuseAlert, AlertStatus


@admin.register(AbuseAlert)
class AbuseAlertAdmin(admin.ModelAdmin):
    list_display = ("updated_at", "kind", "coupon_link", "message", "occurrences", "status")
    list_filter = ("kind", "status")
    search_fields = ["coupon__code", "message"]
    date_hierarchy = "updated_at"
    list_select_related = ("coupon",)
    readonly_fields = (
        "kind",
        "coupon",
        "subject",
        "message",
        "details",
        "occurrences",
        "created_at",
        "updated_at",
        "reviewed_by",
        "reviewed_at",
    )
    fields = (
        "kind",
        "coupon",
        "message",
        "details",
        "occurrences",
        "status",
        "subject",
        "created_at",
        "updated_at",
        "reviewed_by",
        "reviewed_at",
    )
    actions = ["mark_reviewed", "dismiss"]

    def has_add_permission(self, request):
        return False  # alerts come from the detectors only

    def has_delete_permission(self, request, obj=None):
        return False  # the trail is kept

    @admin.display(description="coupon", ordering="coupon__code")
    def coupon_link(self, obj: AbuseAlert) -> str:
        url = reverse("admin:coupons_coupon_change", args=[obj.coupon_id])
        return format_html('<a href="{}">{}</a>', url, obj.coupon.code)

    def save_model(self, request, obj, form, change):
        """Only the review columns: `occurrences` as the page loaded it is never written
        back over a finding counted meanwhile."""
        if "status" in form.changed_data:
            services.alerts_review(alert_ids=[obj.pk], status=obj.status, user=request.user)
        obj.refresh_from_db()

    def _review(self, request, queryset, status: str) -> None:
        changed = services.alerts_review(
            alert_ids=list(queryset.values_list("pk", flat=True)), status=status, user=request.user
        )
        self.message_user(request, f"{changed} alert(s) marked {status}.", messages.SUCCESS)

    @admin.action(description="Mark selected alerts reviewed", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        self._review(request, queryset, AlertStatus.REVIEWED)

    @admin.action(description="Dismiss selected alerts", permissions=["change"])
    def dismiss(self, request, queryset):
        self._review(request, queryset, AlertStatus.DISMISSED)
