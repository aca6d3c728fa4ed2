"""Marketing screens for flash sales: campaigns with live counts, the stop button, and a
read-only list of claims. Writes go through campaigns.services (STYLE.md, Admin)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone

from core import money
from core.admin import ReadOnlyAdminMixin
from core.errors import DomainError
from coupons.campaigns import services
from coupons.campaigns.models import Campaign, CampaignStatus, Claim


class CampaignAdminForm(forms.ModelForm):
    """The campaign plus a simple discount (type, value, optional cap) for new campaigns;
    richer discounts go through the admin API's coupon definition."""

    discount_type = forms.ChoiceField(
        choices=[("percentage", "Percentage"), ("fixed", "Fixed amount")], required=False
    )
    discount_value = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="Percent (25 = 25%) or an amount in the currency.",
    )
    discount_cap = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=2,
        help_text="Maximum discount (optional).",
    )
    currency = forms.CharField(max_length=3, initial="USD", required=False)

    class Meta:
        model = Campaign
        fields = ("name", "inventory", "starts_at", "ends_at", "claim_hold_minutes")

    def clean(self):
        cleaned = super().clean()
        if self.instance._state.adding:  # (a UUID pk is set before the first save)
            kind, value = cleaned.get("discount_type"), cleaned.get("discount_value")
            currency = (cleaned.get("currency") or "USD").upper()
            if not kind:
                self.add_error("discount_type", "Choose the discount type.")
            if value is None:
                self.add_error("discount_value", "Enter the discount value.")
            if not money.is_currency(currency):
                self.add_error("currency", "Enter an ISO 4217 currency code.")
            elif kind and value is not None:
                try:
                    self.discount = {
                        "type": kind,
                        "currency": currency,
                        **self._value(kind, value, cleaned.get("discount_cap"), currency),
                    }
                except (money.MoneyError, ValueError) as exc:
                    self.add_error("discount_value", str(exc))
        return cleaned

    @staticmethod
    def _value(kind, value, cap, currency) -> dict:
        fields = {"cap_minor": money.parse_amount(cap, currency) if cap is not None else None}
        if kind == "percentage":
            if value > 100:
                raise ValueError("A percentage is at most 100.")
            fields["percent_bp"] = int(value * 100)
        else:
            fields["amount_minor"] = money.parse_amount(value, currency)
        return fields


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = (
        "name",
        "status_text",
        "inventory",
        "claimed",
        "remaining_units",
        "window",
        "claim_hold_minutes",
        "stopped_at",
    )
    list_select_related = ("coupon",)
    list_filter = (("stopped_at", admin.EmptyFieldListFilter), "starts_at")
    search_fields = ["name"]
    actions = ["stop_now"]
    readonly_fields = (
        "status_text",
        "claimed",
        "remaining_units",
        "stopped_at",
        "coupon_link",
        "claims_link",
        "created_at",
        "updated_at",
    )
    change_form_template = "admin/campaigns/campaign/change_form.html"

    def get_fieldsets(self, request, obj=None):
        main = (
            None,
            {"fields": ("name", "inventory", "starts_at", "ends_at", "claim_hold_minutes")},
        )
        if obj is None:
            return (
                main,
                (
                    "Discount",
                    {"fields": ("discount_type", "discount_value", "discount_cap", "currency")},
                ),
            )
        return (
            main,
            (
                "State",
                {
                    "fields": (
                        "status_text",
                        "claimed",
                        "remaining_units",
                        "stopped_at",
                        "coupon_link",
                        "claims_link",
                        "created_at",
                        "updated_at",
                    )
                },
            ),
        )

    def has_delete_permission(self, request, obj=None):
        return False  # claims and redemptions point at it: stop it instead

    @admin.display(description="status")
    def status_text(self, obj: Campaign) -> str:
        return dict(CampaignStatus.choices)[obj.status]

    @admin.display(description="remaining")
    def remaining_units(self, obj: Campaign) -> int:
        return obj.remaining

    @admin.display(description="window")
    def window(self, obj: Campaign) -> str:
        fmt = "%Y-%m-%d %H:%M"
        return (
            f"{timezone.localtime(obj.starts_at).strftime(fmt)} → "
            f"{timezone.localtime(obj.ends_at).strftime(fmt)}"
        )

    @admin.display(description="discount")
    def coupon_link(self, obj: Campaign) -> str:
        from django.utils.html import format_html

        url = reverse("admin:coupons_coupon_change", args=[obj.coupon_id])
        return format_html('<a href="{}">{}</a>', url, obj.coupon)

    @admin.display(description="claims")
    def claims_link(self, obj: Campaign) -> str:
        from django.utils.html import format_html

        url = reverse("admin:campaigns_claim_changelist") + f"?campaign__id__exact={obj.pk}"
        return format_html('<a href="{}">{} claims</a>', url, obj.claims.count())

    # --- writes through the services ---

    def save_model(self, request, obj, form, change):
        if change:
            saved = services.campaign_update(campaign=obj)
        else:
            saved = services.campaign_create(
                name=obj.name,
                inventory=obj.inventory,
                starts_at=obj.starts_at,
                ends_at=obj.ends_at,
                discount=form.discount,
                claim_hold_minutes=obj.claim_hold_minutes,
            )
        for field in Campaign._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, DomainError) as exc:  # a rule the form could not see
            text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else exc.message
            self.message_user(request, f"The campaign was not saved: {text}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(description="Stop now (no new claims)", permissions=["change"])
    def stop_now(self, request, queryset):
        stopped = services.campaigns_stop(campaign_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Stopped {stopped} campaign(s).", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<uuid:object_id>/stop/",
                self.admin_site.admin_view(self.stop_view),
                name="campaigns_campaign_stop",
            ),
            *super().get_urls(),
        ]

    def stop_view(self, request, object_id):
        """The change page's "Stop now" button (POST only)."""
        campaign = get_object_or_404(Campaign, pk=object_id)
        if request.method != "POST" or not self.has_change_permission(request, campaign):
            raise PermissionDenied
        if services.campaigns_stop(campaign_ids=[campaign.pk]):
            self.message_user(request, f"Stopped “{campaign}”: no new claims.", messages.SUCCESS)
        else:
            self.message_user(request, f"“{campaign}” was already stopped.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "campaign",
        "customer",
        "status",
        "token",
        "expires_at",
        "created_at",
        "released_at",
    )
    list_select_related = ("campaign", "customer", "code")
    list_filter = ("status", "campaign")
    search_fields = ["customer__external_id", "code__code"]
    date_hierarchy = "created_at"

    @admin.display(description="token")
    def token(self, obj: Claim) -> str:
        return obj.code.code
