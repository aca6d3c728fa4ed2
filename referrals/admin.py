"""Referrals in the admin: the program's settings (one row), referrals with their
transitions and a review action for held ones, codes and rewards (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages

from referrals import services
from referrals.models import Program, Referral, ReferralCode, ReferralTransition, Reward


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ("__str__", "referrer_credit_minor", "hold_days", "welcome_percent_bp", "active")

    def has_add_permission(self, request):
        return not Program.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


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
