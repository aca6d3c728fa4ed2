"""The Django admin for finance: plans, billing customers with their credit ledger,
subscriptions with their history and actions, invoices with lines, attempts, credit notes,
an HTML view and refunds, the read-only engine rows (payment attempts, credit notes, the
outbox, test clocks), and two pages: the billing overview (charts) and dunning.

Who: the "finance" group (billing/migrations/0002) and superusers; other staff get 403.
Every write goes through `billing.services` (plans, customers, cancel, resume, retry,
refund), which own the locks and transactions; a refusal (core.errors.DomainError) is a
form or message error, never a 500. Money, states and counters are read-only and shown
formatted (`admin_views.money_text`). The overview and dunning pages are the
subscription admin's views at /admin/billing/overview/ and /admin/billing/dunning/
(`_with_finance_urls`), listed first in the Billing section of the admin index
(`_with_finance_pages`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from simple_history.admin import SimpleHistoryAdmin

from billing import admin_views, services
from billing.models import (
    BillingCustomer,
    CreditEntry,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    OutboxEvent,
    PaymentAttempt,
    Plan,
    Subscription,
    SubscriptionTransition,
    TestClock,
)
from billing.selectors import access_plan, invoice_get
from core import money
from core.admin import ReadOnlyAdminMixin, ServiceSaveMixin, changed_fields, error_text
from core.errors import DomainError, database_input_errors

VIEW_SUBSCRIPTIONS = "billing.view_subscription"
VIEW_INVOICES = "billing.view_invoice"
CHANGE_INVOICES = "billing.change_invoice"
TIME = "%Y-%m-%d %H:%M"

money_text = admin_views.money_text


def _when(moment) -> str:
    return moment.strftime(TIME) if moment else "—"


def _short(pk) -> str:
    return str(pk)[:8]


def _change_link(obj, text: str | None = None) -> str:
    if obj is None:
        return "—"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def _safe_next(request, default: str) -> str:
    target = request.POST.get("_next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class ReadOnlyInline(admin.TabularInline):
    """Rows written by the engine, shown under their parent: no add, edit or delete."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceOnlyChangeMixin:
    """A change page with nothing to save: every field is read-only and changes are the
    actions (services). Saving would write back the row as loaded over what the engine
    did meanwhile, so there is no Save button and `save_model` writes nothing."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        return None

    def save_related(self, request, form, formsets, change):
        return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)


# --- plans ------------------------------------------------------------------------------


class PlanAdminForm(forms.ModelForm):
    """The amount is typed as a decimal ("29.00") in the plan's currency and becomes
    minor units; `price_locked` (set by PlanAdmin once the plan has had a subscriber)
    removes it, as currency and interval are then read-only too."""

    price_locked = False
    amount = forms.CharField(
        max_length=20,
        widget=forms.TextInput(attrs={"size": 12}),
        help_text='In the plan\'s currency, such as "29.00". Fixed once somebody subscribed '
        "(a new price is a new plan).",
    )

    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "currency",
            "interval",
            "trial_days",
            "is_default",
            "active",
            "features",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.price_locked:
            self.fields.pop("amount", None)
        elif self.instance.pk is not None:
            self.initial.setdefault(
                "amount", money.format_amount(self.instance.amount_minor, self.instance.currency)
            )

    def clean_currency(self) -> str:
        currency = (self.cleaned_data.get("currency") or "").strip().upper()
        if not money.is_currency(currency):
            raise forms.ValidationError("Enter an ISO-4217 currency code such as USD.")
        return currency

    def clean(self):
        cleaned = super().clean()
        if "amount" in self.fields and "amount" in cleaned:
            currency = cleaned.get("currency") or self.instance.currency
            try:
                cleaned["amount_minor"] = money.parse_amount(cleaned["amount"], currency)
            except money.MoneyError as exc:
                self.add_error("amount", str(exc))
            else:
                self.instance.amount_minor = cleaned["amount_minor"]
        return cleaned

    def _get_validation_exclusions(self):
        # Setting "default" takes it off the previous default plan (plan_create and
        # plan_update do it in their transaction): not a violation of plan_one_default.
        return {*super()._get_validation_exclusions(), "is_default"}


@admin.register(Plan)
class PlanAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Plans, saved through plan_create / plan_update. A new tier or price is a new plan;
    once a plan has had a subscriber its amount, currency and interval are read-only."""

    form = PlanAdminForm
    list_display = (
        "code",
        "name",
        "amount_text",
        "interval",
        "trial_days",
        "is_default",
        "active",
    )
    list_filter = ("active", "interval", "currency", "is_default")
    list_select_related = False  # no foreign keys on the list
    search_fields = ["code", "name"]
    ordering = ("amount_minor", "code")
    history_list_display = ["amount_minor", "active", "is_default"]

    def has_delete_permission(self, request, obj=None):
        return False  # subscriptions and invoices point at plans; retire one with "active"

    @admin.display(description="amount", ordering="amount_minor")
    def amount_text(self, obj: Plan) -> str:
        return money_text(obj.amount_minor, obj.currency)

    @admin.display(description="subscriptions")
    def subscriptions_link(self, obj: Plan) -> str:
        if obj.pk is None:
            return "—"
        count = obj.subscriptions.count()
        url = f"{reverse('admin:billing_subscription_changelist')}?plan__id__exact={obj.pk}"
        return format_html('<a href="{}">{} subscription(s)</a>', url, count)

    def _locked(self, obj) -> bool:
        return obj is not None and services.plan_has_subscribers(obj)

    def get_fields(self, request, obj=None):
        amount = "amount_text" if self._locked(obj) else "amount"
        fields = ["code", "name", amount, "currency", "interval", "trial_days"]
        fields += ["is_default", "active", "features"]
        if obj is not None:
            fields += ["subscriptions_link", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        fixed = ("code", "subscriptions_link", "created_at", "updated_at")
        if self._locked(obj):
            fixed += ("amount_text", "currency", "interval")
        return fixed

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.price_locked = self._locked(obj)
        return form

    def save_via_service(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            fields = {name: data[name] for name in PlanAdminForm.Meta.fields}
            fields["amount_minor"] = data["amount_minor"]
            with database_input_errors():
                return services.plan_create(fields=fields)
        fields = changed_fields(form)
        if "amount_minor" in data and {"amount", "currency"} & set(form.changed_data):
            fields["amount_minor"] = data["amount_minor"]
        with database_input_errors():
            return services.plan_update(code=obj.code, fields=fields)


# --- customers --------------------------------------------------------------------------


class CreditEntryInline(ReadOnlyInline):
    model = CreditEntry
    fk_name = "customer"
    fields = ("created_at", "kind", "amount_text", "invoice_link", "reference", "description")
    readonly_fields = fields
    verbose_name_plural = "credit ledger"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")

    @admin.display(description="amount")
    def amount_text(self, obj: CreditEntry) -> str:
        return money_text(obj.amount_minor, obj.currency)

    @admin.display(description="invoice")
    def invoice_link(self, obj: CreditEntry) -> str:
        return _change_link(obj.invoice)


class BillingCustomerForm(forms.ModelForm):
    class Meta:
        model = BillingCustomer
        fields = ["name", "email", "payment_method", "test_clock"]


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ServiceSaveMixin, admin.ModelAdmin):
    """Customers are created by the API (PUT or the first subscribe); finance may change
    the contact, the payment method (a new one retries a past-due invoice at once) and,
    before any subscription, the test clock. Saved through customer_upsert."""

    form = BillingCustomerForm
    list_display = (
        "customer_id",
        "name",
        "email",
        "payment_method",
        "credit_text",
        "test_clock",
        "created_at",
    )
    list_filter = ("currency", "test_clock", "created_at")
    list_select_related = ("test_clock",)
    search_fields = ["customer_id", "email", "name"]
    ordering = ("-created_at",)
    fields = (
        "customer_id",
        "name",
        "email",
        "payment_method",
        "currency",
        "credit_text",
        "test_clock",
        "clock_time",
        "related_links",
        "signed_up_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "customer_id",
        "currency",
        "credit_text",
        "clock_time",
        "related_links",
        "signed_up_at",
        "created_at",
        "updated_at",
    )
    inlines = [CreditEntryInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="credit balance", ordering="credit_balance_minor")
    def credit_text(self, obj: BillingCustomer) -> str:
        return money_text(obj.credit_balance_minor, obj.currency)

    @admin.display(description="time on its clock")
    def clock_time(self, obj: BillingCustomer) -> str:
        if obj.test_clock is None:
            return "the wall clock"
        return f"{_when(obj.test_clock.frozen_time)} ({obj.test_clock.get_status_display()})"

    @admin.display(description="billing")
    def related_links(self, obj: BillingCustomer) -> str:
        subs = f"{reverse('admin:billing_subscription_changelist')}?customer__id__exact={obj.pk}"
        invoices = f"{reverse('admin:billing_invoice_changelist')}?customer__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">{} subscription(s)</a> · <a href="{}">{} invoice(s)</a>',
            subs,
            obj.subscriptions.count(),
            invoices,
            obj.invoices.count(),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Not in the admin's usual transaction: a new payment method retries past-due
        # invoices, and the gateway is never called inside a transaction. The service
        # owns its own.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if getattr(form.instance, "_service_error", None):
            # Not saved: the (read-only) ledger formset has saved nothing either, and the
            # change message the admin builds next asks it what it saved.
            for formset in formsets:
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def save_via_service(self, request, obj, form, change):
        fields = changed_fields(form)
        if "test_clock" in fields:
            clock = fields["test_clock"]
            fields["test_clock"] = str(clock.pk) if clock is not None else None
        result = services.customer_upsert(customer_id=obj.customer_id, fields=fields)
        for invoice in Invoice.objects.filter(pk__in=result.retried_invoices):
            outcome = "paid" if invoice.status == InvoiceStatus.PAID else invoice.status
            self.message_user(
                request,
                f"The new payment method retried {invoice.number} at once: {outcome}.",
                messages.SUCCESS if invoice.status == InvoiceStatus.PAID else messages.WARNING,
            )
        return result.customer


# --- subscriptions ----------------------------------------------------------------------


class TransitionInline(ReadOnlyInline):
    model = SubscriptionTransition
    fields = ("at", "from_status", "to_status", "reason", "created_at")
    readonly_fields = fields
    verbose_name_plural = "history (every status change and recorded change, customer's time)"


class SubscriptionInvoiceInline(ReadOnlyInline):
    model = Invoice
    fk_name = "subscription"
    fields = ("number_link", "billing_reason", "status", "period", "total_text", "due_text")
    readonly_fields = fields
    ordering = ("-created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer")

    @admin.display(description="number")
    def number_link(self, obj: Invoice) -> str:
        return _change_link(obj)

    @admin.display(description="period")
    def period(self, obj: Invoice) -> str:
        return f"{_when(obj.period_start)} to {_when(obj.period_end)}"

    @admin.display(description="total")
    def total_text(self, obj: Invoice) -> str:
        return money_text(obj.total_minor, obj.currency)

    @admin.display(description="due")
    def due_text(self, obj: Invoice) -> str:
        return money_text(obj.amount_due_minor, obj.currency)


def _each(
    admin_: SubscriptionAdmin,
    request,
    queryset: QuerySet[Subscription],
    run: Callable[[Subscription], str | None],
) -> HttpResponseRedirect | None:
    """Run one service call per selected subscription: a message per outcome, an error
    message per refusal; back to the page the buttons were on, if any."""
    for sub in queryset.select_related("customer", "plan"):
        label = f"{sub.customer.customer_id} ({sub.plan.code})"
        try:
            text = run(sub)
        except DomainError as exc:
            admin_.message_user(request, f"{label}: {error_text(exc)}", messages.ERROR)
            continue
        if text:
            level = messages.WARNING if text.startswith("!") else messages.SUCCESS
            admin_.message_user(request, f"{label}: {text.lstrip('!')}", level)
    if request.POST.get("_next"):
        return HttpResponseRedirect(_safe_next(request, request.get_full_path()))
    return None


@admin.register(Subscription)
class SubscriptionAdmin(ServiceOnlyChangeMixin, admin.ModelAdmin):
    """Subscriptions, read-only; cancel, resume and retry are actions (also buttons on a
    subscription's page) calling the services. Also the views of the billing overview and
    dunning pages (at /admin/billing/overview/ and /admin/billing/dunning/)."""

    list_display = (
        "short_id",
        "customer",
        "plan",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "created_at",
    )
    list_filter = ("status", "plan", "cancel_at_period_end", "created_at")
    list_select_related = ("customer", "plan")
    search_fields = ["customer__customer_id", "customer__email", "coupon_code"]
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "customer_link",
        "plan",
        "pending_plan",
        "status",
        "access_text",
        "anchor",
        "period_index",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
        "cancelled_at",
        "ended_at",
        "past_due_since",
        "coupon_code",
        "discount_remaining",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [TransitionInline, SubscriptionInvoiceInline]
    actions = ["cancel_now", "cancel_at_period_end", "resume", "retry_open_invoice"]
    change_form_template = "admin/billing/subscription/change_form.html"

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: Subscription) -> str:
        return _short(obj.pk)

    @admin.display(description="customer")
    def customer_link(self, obj: Subscription) -> str:
        return _change_link(obj.customer)

    @admin.display(description="features from")
    def access_text(self, obj: Subscription) -> str:
        """What billing answers the entitlements app for this customer now."""
        access = access_plan(obj.customer.customer_id)
        plan = access.plan.code if access.plan else "no plan"
        until = f" until {_when(access.until)}" if access.until else ""
        return f"{plan} ({access.source}){until}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sub = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if sub is not None:
            extra["subscription_buttons"] = self._buttons(sub)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    @staticmethod
    def _buttons(sub: Subscription) -> list[tuple[str, str]]:
        """The actions that mean something for this subscription now."""
        buttons = []
        if sub.invoices.filter(status=InvoiceStatus.OPEN).exists():
            buttons.append(("retry_open_invoice", "Retry the open invoice now"))
        if sub.cancel_at_period_end and sub.is_live:
            buttons.append(("resume", "Resume"))
        elif sub.status in ("active", "trialing"):
            buttons.append(("cancel_at_period_end", "Cancel at period end"))
        if sub.is_live and sub.status != "incomplete":
            buttons.append(("cancel_now", "Cancel now"))
        return buttons

    # --- actions ---

    @admin.action(description="Cancel selected subscriptions now", permissions=["change"])
    def cancel_now(self, request, queryset):
        def run(sub):
            done = services.subscription_cancel(sub_id=sub.pk, at_period_end=False)
            if sub.status == done.status:
                return f"!already {done.status}; nothing to do."
            return "cancelled now; open invoices voided."

        return _each(self, request, queryset, run)

    @admin.action(
        description="Cancel selected subscriptions at the period end", permissions=["change"]
    )
    def cancel_at_period_end(self, request, queryset):
        def run(sub):
            done = services.subscription_cancel(sub_id=sub.pk, at_period_end=True)
            if done.status == "cancelled" and sub.status != "cancelled":
                # billing cancels a past-due subscription at once: nothing paid to wait for
                return "!cancelled now (a past-due subscription has no paid period to end)."
            if not done.is_live:
                return f"!already {done.status}; nothing to do."
            return f"cancels at the period end, {_when(done.current_period_end)}."

        return _each(self, request, queryset, run)

    @admin.action(description="Resume selected subscriptions", permissions=["change"])
    def resume(self, request, queryset):
        def run(sub):
            was_pending = sub.cancel_at_period_end
            services.subscription_resume(sub_id=sub.pk)
            return "resumed; it renews as usual." if was_pending else "!had no pending cancel."

        return _each(self, request, queryset, run)

    @admin.action(description="Retry the open invoice now", permissions=["change"])
    def retry_open_invoice(self, request, queryset):
        def run(sub):
            invoices = list(sub.invoices.filter(status=InvoiceStatus.OPEN).order_by("created_at"))
            if not invoices:
                return "!no open invoice to retry."
            texts = []
            for invoice in invoices:
                outcome = services.invoice_retry_now(invoice_id=invoice.pk)
                texts.append(self._outcome_text(invoice, outcome))
            warn = any(t.startswith("!") for t in texts)
            return ("!" if warn else "") + " ".join(t.lstrip("!") for t in texts)

        return _each(self, request, queryset, run)

    @staticmethod
    def _outcome_text(invoice: Invoice, outcome) -> str:
        due = money_text(invoice.total_minor - invoice.amount_paid_minor, invoice.currency)
        if outcome.status == "paid":
            return f"{invoice.number} paid ({due})."
        if outcome.status == "declined":
            effect = {
                "retry_scheduled": "the next retry stays scheduled",
                "uncollectible": "dunning is over: uncollectible, subscription cancelled",
            }.get(outcome.effect, outcome.effect or "")
            reason = outcome.failure_message or outcome.failure_code or "declined"
            return f"!{invoice.number} declined: {reason}" + (f"; {effect}." if effect else ".")
        if outcome.status == "pending":
            return f"!{invoice.number}: the gateway has not answered; settled later."
        return f"!{invoice.number}: nothing due."

    # --- pages (their URLs: _with_finance_urls) ---

    def _check(self, request) -> None:
        if not request.user.has_perm(VIEW_SUBSCRIPTIONS):
            raise PermissionDenied

    def _page(self, request, template: str, title: str, extra: dict):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "can_retry": self.has_change_permission(request),
            **extra,
        }
        return TemplateResponse(request, template, context)

    def overview_view(self, request):
        self._check(request)
        form = admin_views.overview_form(request.GET)
        data = admin_views.overview_data(form) if form.is_valid() else None
        return self._page(
            request,
            "admin/billing/overview.html",
            "Billing overview",
            {"form": form, "data": data, "subtitle": data["scope"] if data else None},
        )

    def dunning_view(self, request):
        self._check(request)
        return self._page(
            request, "admin/billing/dunning.html", "Dunning", {"data": admin_views.dunning_data()}
        )


# --- invoices ---------------------------------------------------------------------------


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ("position", "kind", "description", "quantity", "amount_text")
    readonly_fields = fields
    verbose_name_plural = "lines"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")

    @admin.display(description="amount")
    def amount_text(self, obj: InvoiceLine) -> str:
        return money_text(obj.amount_minor, obj.invoice.currency)


class PaymentAttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = (
        "created_at",
        "amount_text",
        "payment_method",
        "status",
        "failure_code",
        "failure_message",
        "provider_ref",
        "completed_at",
    )
    readonly_fields = fields
    verbose_name_plural = "payment attempts"

    @admin.display(description="amount")
    def amount_text(self, obj: PaymentAttempt) -> str:
        return money_text(obj.amount_minor, obj.currency)


class CreditNoteInline(ReadOnlyInline):
    model = CreditNote
    fields = ("number", "created_at", "amount_text", "reason", "refund_ref", "refunded_at")
    readonly_fields = fields
    verbose_name_plural = "credit notes (refunds)"

    @admin.display(description="amount")
    def amount_text(self, obj: CreditNote) -> str:
        return money_text(obj.amount_minor, obj.currency)


@admin.register(Invoice)
class InvoiceAdmin(ServiceOnlyChangeMixin, admin.ModelAdmin):
    """Invoices, read-only, with their lines, attempts and credit notes; "View invoice"
    shows one as a document (`<id>/document/`), "Refund…" issues a credit note through
    invoice_refund (`<id>/refund/`)."""

    list_display = (
        "number",
        "customer",
        "billing_reason",
        "status",
        "total_text",
        "due_text",
        "period_start",
        "created_at",
        "document_link",
    )
    list_filter = ("status", "billing_reason", "currency", "created_at")
    list_select_related = ("customer",)
    search_fields = ["number", "customer__customer_id", "customer__email"]
    ordering = ("-created_at", "-number")
    date_hierarchy = "created_at"
    fields = (
        "number",
        "status",
        "customer_link",
        "subscription_link",
        "plan",
        "billing_reason",
        "period_start",
        "period_end",
        "currency",
        "subtotal_text",
        "discount_text",
        "credit_text",
        "total_text",
        "paid_text",
        "refunded_text",
        "due_text",
        "attempt_count",
        "first_failed_at",
        "next_attempt_at",
        "finalized_at",
        "paid_at",
        "voided_at",
        "created_at",
        "document_link",
    )
    readonly_fields = fields
    inlines = [InvoiceLineInline, PaymentAttemptInline, CreditNoteInline]
    actions = ["refund_selected"]
    change_form_template = "admin/billing/invoice/change_form.html"

    def _money(self, obj: Invoice, minor: int) -> str:
        return money_text(minor, obj.currency)

    @admin.display(description="customer")
    def customer_link(self, obj: Invoice) -> str:
        return _change_link(obj.customer)

    @admin.display(description="subscription")
    def subscription_link(self, obj: Invoice) -> str:
        return _change_link(obj.subscription, _short(obj.subscription_id))

    @admin.display(description="subtotal")
    def subtotal_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.subtotal_minor)

    @admin.display(description="discount")
    def discount_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.discount_minor)

    @admin.display(description="credit applied")
    def credit_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.credit_applied_minor)

    @admin.display(description="total", ordering="total_minor")
    def total_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.total_minor)

    @admin.display(description="paid")
    def paid_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.amount_paid_minor)

    @admin.display(description="refunded")
    def refunded_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.amount_refunded_minor)

    @admin.display(description="due")
    def due_text(self, obj: Invoice) -> str:
        return self._money(obj, obj.amount_due_minor)

    @admin.display(description="document")
    def document_link(self, obj: Invoice) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:billing_invoice_document", args=[obj.pk])
        return format_html('<a href="{}" class="invoice-document-link">View invoice</a>', url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invoice = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if invoice is not None:
            extra["can_refund"] = self._can_refund(request, invoice)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _can_refund(self, request, invoice: Invoice) -> bool:
        return (
            request.user.has_perm(CHANGE_INVOICES)
            and invoice.amount_paid_minor > invoice.amount_refunded_minor
        )

    @admin.action(description="Refund the selected invoice…", permissions=["change"])
    def refund_selected(self, request, queryset):
        invoices = list(queryset[:2])
        if len(invoices) != 1:
            self.message_user(request, "Choose one invoice to refund.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:billing_invoice_refund", args=[invoices[0].pk]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:object_id>/document/",
                view(self.document_view),
                name="billing_invoice_document",
            ),
            path("<uuid:object_id>/refund/", view(self.refund_view), name="billing_invoice_refund"),
            *super().get_urls(),
        ]

    def document_view(self, request, object_id):
        """The invoice as a document (what the PDF shows), printable from the browser."""
        if not request.user.has_perm(VIEW_INVOICES):
            raise PermissionDenied
        try:
            invoice = invoice_get(object_id)
        except DomainError:
            invoice = get_object_or_404(Invoice, pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Invoice {invoice}",
            "opts": self.opts,
            "original": invoice,
            "can_refund": self._can_refund(request, invoice),
            **admin_views.invoice_view_data(invoice),
        }
        return TemplateResponse(request, "admin/billing/invoice_detail.html", context)

    def refund_view(self, request, object_id):
        """GET: the refund form; POST: invoice_refund, then back to the invoice. A refusal
        (more than is refundable, say) is an error message over the form."""
        if not request.user.has_perm(CHANGE_INVOICES):
            raise PermissionDenied
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=object_id)
        form = admin_views.RefundForm(
            request.POST if request.method == "POST" else None, currency=invoice.currency
        )
        if request.method == "POST" and form.is_valid():
            try:
                note = services.invoice_refund(
                    invoice_id=invoice.pk,
                    amount_minor=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as exc:
                self.message_user(request, f"Not refunded: {error_text(exc)}", messages.ERROR)
            else:
                sent = (
                    "refunded"
                    if note.refunded_at
                    else "the refund is sent once the gateway answers"
                )
                self.message_user(
                    request,
                    f"Credit note {note.number} for {money_text(note.amount_minor, note.currency)}"
                    f" on {invoice.number}: {sent}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:billing_invoice_change", args=[invoice.pk])
                )
        data = admin_views.invoice_view_data(invoice)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund {invoice}",
            "opts": self.opts,
            "original": invoice,
            "form": form,
            "refundable_text": data["refundable_text"],
            "totals": data["totals"],
        }
        return TemplateResponse(request, "admin/billing/refund.html", context)


# --- engine rows (read-only lists) ------------------------------------------------------


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "invoice",
        "amount_text",
        "status",
        "payment_method",
        "failure_code",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "failure_code", "currency", "created_at")
    list_select_related = ("invoice",)
    search_fields = ["invoice__number", "provider_ref"]
    ordering = ("-created_at",)
    date_hierarchy = "created_at"

    @admin.display(description="id")
    def short_id(self, obj: PaymentAttempt) -> str:
        return _short(obj.pk)

    @admin.display(description="amount", ordering="amount_minor")
    def amount_text(self, obj: PaymentAttempt) -> str:
        return money_text(obj.amount_minor, obj.currency)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "number",
        "invoice",
        "amount_text",
        "reason",
        "refunded_at",
        "refund_ref",
        "created_at",
    )
    list_filter = (("refunded_at", admin.EmptyFieldListFilter), "currency", "created_at")
    list_select_related = ("invoice",)
    search_fields = ["number", "invoice__number"]
    ordering = ("-created_at",)

    @admin.display(description="amount", ordering="amount_minor")
    def amount_text(self, obj: CreditNote) -> str:
        return money_text(obj.amount_minor, obj.currency)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "type", "occurred_at", "delivered_at", "attempts", "last_error")
    list_filter = ("type", ("delivered_at", admin.EmptyFieldListFilter), "occurred_at")
    list_select_related = False  # no foreign keys
    search_fields = ["type"]
    ordering = ("-id",)
    fields = (
        "id",
        "type",
        "payload_text",
        "occurred_at",
        "created_at",
        "delivered_at",
        "attempts",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description="payload")
    def payload_text(self, obj: OutboxEvent) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True, default=str)
        )


@admin.register(TestClock)
class TestClockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "frozen_time", "status", "customer_count", "created_at")
    list_filter = ("status", "created_at")
    list_select_related = False  # no foreign keys
    search_fields = ["name"]
    ordering = ("-created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(customer_count=Count("customers"))

    @admin.display(description="customers", ordering="customer_count")
    def customer_count(self, obj) -> int:
        return obj.customer_count


# --- the site: the two finance pages' URLs, and their place in the Billing section ------

FINANCE_PAGES = (
    # (URL under /admin/billing/, URL name, the index's label, its CSS object name)
    ("overview/", "billing_overview", "Billing overview", "BillingOverview"),
    ("dunning/", "billing_dunning", "Dunning", "Dunning"),
)


def _with_finance_urls(get_urls):
    """Wrap the site's get_urls: /admin/billing/overview/ and /admin/billing/dunning/,
    before the app index's own patterns (they sit beside the models, not under one)."""

    def urls():
        subscriptions = admin.site._registry[Subscription]
        views = {
            "billing_overview": subscriptions.overview_view,
            "billing_dunning": subscriptions.dunning_view,
        }
        return [
            *(
                path(f"billing/{route}", admin.site.admin_view(views[name]), name=name)
                for route, name, _, _ in FINANCE_PAGES
            ),
            *get_urls(),
        ]

    urls.finance_pages = True
    return urls


def _with_finance_pages(get_app_list):
    """Wrap the site's get_app_list so the Billing section (index, app index, sidebar)
    lists the overview and dunning pages first, for users who may see them."""

    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        if not request.user.has_perm(VIEW_SUBSCRIPTIONS):
            return apps
        for app in apps:
            if app["app_label"] == "billing":
                app["models"][:0] = [
                    {
                        "name": label,
                        "object_name": object_name,
                        "perms": {"view": True},
                        "admin_url": reverse(f"admin:{name}", current_app=admin.site.name),
                        "add_url": None,
                        "view_only": True,
                    }
                    for _, name, label, object_name in FINANCE_PAGES
                ]
        return apps

    app_list.finance_pages = True
    return app_list


if not getattr(admin.site.get_urls, "finance_pages", False):
    admin.site.get_urls = _with_finance_urls(admin.site.get_urls)  # type: ignore[method-assign]
if not getattr(admin.site.get_app_list, "finance_pages", False):
    admin.site.get_app_list = _with_finance_pages(admin.site.get_app_list)  # type: ignore[method-assign]
