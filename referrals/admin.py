"""Referrals in the admin: the program's settings (one row), referrals with their
transitions and a review action for held ones, codes and rewards (read-only), and the
referrals overview (funnel, signups per week, top referrers, rewards; charts and CSV) at
/admin/referrals/referral/overview/, linked from the Referrals section of the index and
from the referral list, for staff with `referrals.view_referral` (the marketing group).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core import money
from referrals import admin_views, services
from referrals.models import Program, Referral, ReferralCode, ReferralTransition, Reward

VIEW_REFERRALS = "referrals.view_referral"
OVERVIEW_LABEL = "Referrals overview"


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    """The program is one row: its list goes straight to it (made with the settings'
    defaults by `services.program()` on first use), so saving comes back to it too."""

    fieldsets = (
        ("Referrer's reward", {"fields": ("referrer_credit_minor", "reward_text", "hold_days")}),
        (
            "Invitee's welcome offer",
            {"fields": ("welcome_percent_bp", "welcome_text", "welcome_invoices")},
        ),
        (
            "Review rules (held for a person instead of rewarded automatically)",
            {
                "fields": (
                    "review_max_per_ip_day",
                    "review_max_per_device_day",
                    "review_max_per_referrer_hour",
                )
            },
        ),
        (None, {"fields": ("active", "updated_at")}),
    )
    readonly_fields = ("reward_text", "welcome_text", "updated_at")

    def has_add_permission(self, request):
        return False  # the row always exists: services.program()

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="reward, as an amount")
    def reward_text(self, obj: Program) -> str:
        amount = money.format_amount(obj.referrer_credit_minor, "USD")
        return f"{amount} of the converting invoice's currency (for a two-decimal one)"

    @admin.display(description="welcome discount")
    def welcome_text(self, obj: Program) -> str:
        return f"{obj.welcome_percent_bp / 100:g}% off {obj.welcome_invoices} invoice(s)"

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = services.program()
        return HttpResponseRedirect(reverse("admin:referrals_program_change", args=[row.pk]))


class TransitionInline(admin.TabularInline):
    model = ReferralTransition
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "reason", "at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Referral)
class ReferralAdmin(admin.ModelAdmin):
    list_display = (
        "invitee_id",
        "referrer_id",
        "status",
        "held_for_review",
        "review_reason",
        "signed_up_at",
        "converted_at",
    )
    list_filter = ("status", "held_for_review")
    list_select_related = ("code",)
    search_fields = ["invitee_id", "referrer_id"]
    readonly_fields = [f.name for f in Referral._meta.fields]
    inlines = [TransitionInline]
    actions = ["approve", "reject"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- the overview page ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("overview/", view(self.overview_view), name="referrals_overview"),
            path("overview/csv/", view(self.overview_csv_view), name="referrals_overview_csv"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {})}
        if request.user.has_perm(VIEW_REFERRALS):
            extra["overview_url"] = reverse("admin:referrals_overview")
        return super().changelist_view(request, extra_context=extra)

    def _check(self, request) -> None:
        if not request.user.has_perm(VIEW_REFERRALS):
            raise PermissionDenied

    def overview_view(self, request):
        self._check(request)
        form = admin_views.range_form(request.GET)
        data = admin_views.page_data(form) if form.is_valid() else None
        base = reverse("admin:referrals_overview_csv")
        context = {
            **self.admin_site.each_context(request),
            "title": OVERVIEW_LABEL,
            "subtitle": data["scope"] if data else None,
            "opts": self.opts,
            "form": form,
            "data": data,
            "csv_links": {
                kind: f"{base}?{form.query()}&kind={kind}" for kind in admin_views.CSV_KINDS
            }
            if data
            else {},
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/referrals/overview.html", context)

    def overview_csv_view(self, request):
        self._check(request)
        form = admin_views.range_form(request.GET)
        kind = request.GET.get("kind", "")
        if kind not in admin_views.CSV_KINDS:
            form.add_error(None, f"kind must be one of {', '.join(admin_views.CSV_KINDS)}.")
        if not form.is_valid():
            errors = "\n".join(m for messages_ in form.errors.values() for m in messages_)
            return HttpResponse(
                f"Bad filters:\n{errors}\n", status=400, content_type="text/plain; charset=utf-8"
            )
        return admin_views.csv_download(form, kind)

    @admin.action(description="Approve the held referrals (rewarded after the hold)")
    def approve(self, request, queryset):
        for referral in queryset.filter(held_for_review=True):
            services.review_release(referral_id=referral.pk, approve=True, by=request.user.username)
        messages.success(request, "Approved.")

    @admin.action(description="Reject the referrals")
    def reject(self, request, queryset):
        for referral in queryset:
            services.review_release(
                referral_id=referral.pk, approve=False, by=request.user.username
            )
        messages.success(request, "Rejected.")


@admin.register(ReferralCode)
class ReferralCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "customer_id", "created_at")
    search_fields = ["code", "customer_id"]
    readonly_fields = ("code", "customer_id", "identity", "created_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    list_display = ("customer_id", "amount_minor", "currency", "granted_at", "clawed_back_minor")
    list_select_related = ("referral",)
    search_fields = ["customer_id"]
    readonly_fields = [f.name for f in Reward._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- the site: the overview's place in the Referrals section -----------------------------


def _with_overview(get_app_list):
    """Wrap the site's get_app_list so the Referrals section (index, app index, sidebar)
    lists the overview first, for users who may see it."""

    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        if not request.user.has_perm(VIEW_REFERRALS):
            return apps
        for app in apps:
            if app["app_label"] == "referrals":
                app["models"][:0] = [
                    {
                        "name": OVERVIEW_LABEL,
                        "object_name": "ReferralsOverview",
                        "perms": {"view": True},
                        "admin_url": reverse(
                            "admin:referrals_overview", current_app=admin.site.name
                        ),
                        "add_url": None,
                        "view_only": True,
                    }
                ]
        return apps

    app_list.referrals_overview = True
    return app_list


if not getattr(admin.site.get_app_list, "referrals_overview", False):
    admin.site.get_app_list = _with_overview(admin.site.get_app_list)  # type: ignore[method-assign]
