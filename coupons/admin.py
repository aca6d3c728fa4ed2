"""Marketing screens for coupons, codes, redemptions and customers.

Writes go through `coupons.services` so the admin obeys the same rules as the API:
definitions are checked by `coupon_check`, counters are never written from a form, and
every change drops the cached definitions the validate path reads. Money is stored as
integer minor units and percentages as basis points; the coupon form shows staff
decimals ("25" percent, "50.00" dollars) and converts in the coupon's currency.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework import serializers
from simple_history.admin import SimpleHistoryAdmin

from core import money
from core.admin import ReadOnlyAdminMixin, ServiceSaveMixin, changed_fields
from coupons import selectors, services
from coupons.api.admin_serializers import CODE_PATTERN, duration_errors
from coupons.api.fields import CartField
from coupons.api.serializers import MAX_CODES
from coupons.codebatches.admin import generate_codes
from coupons.engine.pricing import Evaluation, Skipped
from coupons.engine.types import Cart, CodeTerms, Shopper
from coupons.models import (
    Code,
    Coupon,
    Customer,
    DiscountType,
    PromotionSettings,
    Redemption,
    StackingPolicy,
)

CURRENCY_CHOICES = [(c, c) for c in sorted(money.CURRENCIES)]
MAX_TIERS = 50
CACHE_FORGET_BATCH = 1000
INFINITY = "∞"
CODE_RE = re.compile(CODE_PATTERN)


# --- display helpers --------------------------------------------------------------------


def _percent_text(bp: int | None) -> str:
    """Basis points -> "25", "12.5", "100" (never Decimal's "1E+1")."""
    if bp is None:
        return "—"
    return format(Decimal(bp).scaleb(-2).normalize(), "f")


def _money_text(minor: int | None, currency: str) -> str:
    return "—" if minor is None else money.display(minor, currency)


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "…"


def _day(moment, *, year: bool) -> str:
    local = timezone.localtime(moment)
    return f"{local:%b} {local.day}, {local.year}" if year else f"{local:%b} {local.day}"


def window_text(start, end) -> str:
    """A validity window in the list's words: "Dec 1 to Dec 31, 2026" (an en dash for
    "to"; the year once when both dates share it), "From Dec 1, 2025", "Until Mar 1,
    2026", "Always". A date never breaks inside (admin's .nowrap): at most two lines."""
    if start is None and end is None:
        return "Always"
    if end is None:
        return format_html("From {}", _nowrap(_day(start, year=True)))
    if start is None:
        return format_html("Until {}", _nowrap(_day(end, year=True)))
    same_year = timezone.localtime(start).year == timezone.localtime(end).year
    return format_html(
        "{} \u2013 {}", _nowrap(_day(start, year=not same_year)), _nowrap(_day(end, year=True))
    )


def _nowrap(text: str) -> str:
    return format_html('<span class="nowrap">{}</span>', text)


def _yes_no_icon(value: bool) -> str:
    """The admin's boolean icon, as `display(boolean=True)` draws it."""
    name = "yes" if value else "no"
    return format_html('<img src="{}" alt="{}">', static(f"admin/img/icon-{name}.svg"), value)


def coupon_value_text(c: Coupon) -> str:
    """What the coupon gives, as marketing would say it."""
    if c.type == DiscountType.PERCENTAGE:
        if c.percent_bp is None:
            return "—"
        text = f"{_percent_text(c.percent_bp)}%"
        if c.cap_minor is not None:
            text += f" (max {_money_text(c.cap_minor, c.currency)})"
        return text
    if c.type == DiscountType.FIXED:
        return _money_text(c.amount_minor, c.currency)
    if c.type == DiscountType.BOGO:
        bp = c.bogo_percent_bp if c.bogo_percent_bp is not None else 10_000
        reward = "free" if bp == 10_000 else f"at {_percent_text(bp)}% off"
        return f"Buy {c.bogo_buy} get {c.bogo_get} {reward}"
    if c.type == DiscountType.TIERED:
        tiers = c.tiers or []
        best = max((t["discount_minor"] for t in tiers), default=0)
        return f"{len(tiers)} tier(s), up to {_money_text(best, c.currency)}"
    return "Free shipping"


def _forget_codes_on_commit(codes: list[str]) -> None:
    """Drop cached code terms after the commit, in batches (a selection may be huge)."""

    def forget():
        for start in range(0, len(codes), CACHE_FORGET_BATCH):
            selectors.cache_forget(codes=codes[start : start + CACHE_FORGET_BATCH])

    transaction.on_commit(forget)


# --- coupon -----------------------------------------------------------------------------


def _money_field(help_text: str, label: str | None = None) -> forms.DecimalField:
    return forms.DecimalField(
        required=False,
        max_digits=16,
        decimal_places=3,
        min_value=Decimal(0),
        label=label,
        help_text=help_text,
    )


class CouponAdminForm(forms.ModelForm):
    """Decimal inputs for the integer money and basis-point columns.

    `clean()` converts them in the chosen currency, runs `services.coupon_check` on the
    would-be coupon and leaves the model field values in `coupon_fields` (all of them, for
    `coupon_create`) and `coupon_changes` (only what changed, for `coupon_update`).
    """

    currency = forms.ChoiceField(choices=CURRENCY_CHOICES, initial="USD")
    percent = forms.DecimalField(
        required=False,
        max_digits=7,
        decimal_places=2,
        help_text="Percentage coupons: 25 means 25% off.",
    )
    amount = _money_field("Fixed coupons: the amount off, e.g. 10.00.")
    cap = _money_field(
        "Percentage coupons: the most it takes off, e.g. 50.00.", label="Discount cap"
    )
    min_cart = _money_field(
        "Minimum merchandise subtotal, e.g. 100.00.", label="Minimum cart value"
    )
    tiers_text = forms.CharField(
        required=False,
        label="Tiers",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 30}),
        help_text="Tiered coupons: one 'spend:discount' per line, e.g. 100.00:10.00. "
        "The highest tier the cart reaches wins.",
    )
    bogo_percent_off = forms.DecimalField(
        required=False,
        max_digits=7,
        decimal_places=2,
        label="BOGO percent off",
        help_text="BOGO coupons: how much the free units are discounted; blank means 100.",
    )
    budget = _money_field(
        "Total discount budget (merchandise + shipping), e.g. 5000.00; "
        "apply refuses a discount that would pass it. Blank: no budget.",
        label="Discount budget",
    )

    class Meta:
        model = Coupon
        fields = [
            "code",
            "description",
            "type",
            "currency",
            "bogo_buy",
            "bogo_get",
            "eligible_categories",
            "eligible_skus",
            "excluded_skus",
            "eligible_segments",
            "first_purchase_only",
            "max_uses_total",
            "max_uses_per_user",
            "valid_from",
            "valid_to",
            "active",
            "stackable",
            "stack_group",
            "auto_apply",
            "priority",
            "leak_threshold",
            "farming_action",
            "limit_by_identity",
            "duration",
            "duration_invoices",
        ]
        labels = {"duration_invoices": "Number of invoices"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["farming_action"].required = False  # blank keeps the default (flag)
        self.fields["duration"].required = False  # blank keeps the coupon's (new: once)
        self.coupon_fields: dict = {}
        self.coupon_changes: dict = {}
        c = self.instance
        if c.pk is None:
            return
        cur = c.currency

        def dec(minor):
            return None if minor is None else money.format_amount(minor, cur)

        initial = {
            "percent": None if c.percent_bp is None else _percent_text(c.percent_bp),
            "amount": dec(c.amount_minor),
            "cap": dec(c.cap_minor),
            "min_cart": dec(c.min_cart_minor),
            "tiers_text": "\n".join(
                f"{dec(t['threshold_minor'])}:{dec(t['discount_minor'])}" for t in c.tiers or []
            ),
            "bogo_percent_off": None
            if c.bogo_percent_bp is None
            else _percent_text(c.bogo_percent_bp),
            "budget": dec(c.budget_minor),
        }
        for name, value in initial.items():
            self.initial.setdefault(name, value)

    def clean_code(self) -> str:
        code = selectors.normalize_code(self.cleaned_data["code"])
        if not CODE_RE.match(code):
            raise ValidationError("Use 1-64 letters, digits, '-' or '_'.")
        # coupon_create also makes a public Code with this string; say so here rather
        # than fail after the form was accepted.
        if self.instance.pk is None and Code.objects.filter(code=code).exists():
            raise ValidationError(f"A code '{code}' already exists.")
        return code

    def clean_farming_action(self) -> str:
        return self.cleaned_data.get("farming_action") or "flag"

    def clean_duration(self) -> str:
        return self.cleaned_data.get("duration") or self.instance.duration

    def clean(self):
        cleaned = super().clean()
        currency = cleaned.get("currency") or self.instance.currency
        kind = cleaned.get("type") or self.instance.type
        model_names = {f.name for f in Coupon._meta.concrete_fields}
        fields = {
            name: cleaned[name] for name in self.fields if name in model_names and name in cleaned
        }
        fields.update(self._converted(cleaned, currency, kind))
        if kind != DiscountType.BOGO:
            fields["bogo_buy"] = fields["bogo_get"] = None
        if "duration" in cleaned and "duration_invoices" not in self._errors:
            for name, errors in duration_errors(
                cleaned["duration"], cleaned.get("duration_invoices")
            ).items():
                self.add_error(name, errors)
        self.coupon_fields = fields
        if self._errors:  # a field is already wrong: the business check would mislead
            return cleaned

        candidate = Coupon(
            **{f.attname: getattr(self.instance, f.attname) for f in Coupon._meta.concrete_fields}
        )
        for name, value in fields.items():
            setattr(candidate, name, value)
        try:
            services.coupon_check(candidate)
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                self.add_error(self._field_for(key, kind), errors)
            return cleaned
        if self.instance.pk is not None:
            self.coupon_changes = {
                name: value
                for name, value in fields.items()
                if getattr(self.instance, name) != value
            }
        return cleaned

    def _converted(self, cleaned: dict, currency: str, kind: str) -> dict:
        """Decimal inputs -> model values; inputs that do not apply to the type are
        stored empty so a type change leaves no stale rule behind."""

        def minor(name):
            value = cleaned.get(name)
            if value is None:
                return None
            try:
                return money.parse_amount(value, currency)
            except money.MoneyError as exc:
                self.add_error(name, str(exc))
                return None

        def bp(name):
            value = cleaned.get(name)
            return None if value is None else int(value * 100)

        return {
            "percent_bp": bp("percent") if kind == DiscountType.PERCENTAGE else None,
            "cap_minor": minor("cap") if kind == DiscountType.PERCENTAGE else None,
            "amount_minor": minor("amount") if kind == DiscountType.FIXED else None,
            "min_cart_minor": minor("min_cart"),
            "tiers": self._tiers(cleaned.get("tiers_text") or "", currency)
            if kind == DiscountType.TIERED
            else [],
            "bogo_percent_bp": bp("bogo_percent_off") if kind == DiscountType.BOGO else None,
            "budget_minor": minor("budget"),
        }

    def _tiers(self, text: str, currency: str) -> list[dict]:
        tiers, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            threshold, sep, discount = line.partition(":")
            if not sep:
                problems.append(f"Line {number}: write spend:discount, e.g. 100.00:10.00.")
                continue
            try:
                tiers.append(
                    {
                        "threshold_minor": money.parse_amount(threshold, currency),
                        "discount_minor": money.parse_amount(discount, currency),
                    }
                )
            except money.MoneyError as exc:
                problems.append(f"Line {number}: {exc}")
        if len(tiers) > MAX_TIERS:
            problems.append(f"At most {MAX_TIERS} tiers.")
        if problems:
            self.add_error("tiers_text", problems)
        return sorted(tiers, key=lambda t: t["threshold_minor"])

    def _field_for(self, key: str, kind: str) -> str | None:
        """coupon_check's error keys -> this form's fields (None: a non-field error)."""
        value_field: dict[str, str] = {
            DiscountType.PERCENTAGE: "percent",
            DiscountType.FIXED: "amount",
        }
        name = {
            "value": value_field.get(kind),
            "tiers": "tiers_text",
            "percent_bp": "percent",
            "amount_minor": "amount",
            "cap_minor": "cap",
            "min_cart_minor": "min_cart",
            "bogo_percent_bp": "bogo_percent_off",
            "budget_minor": "budget",
        }.get(key, key)
        return name if name in self.fields else None


# --- coupon "try it" -----------------------------------------------------------------------


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _drf_messages(detail, where: str = "") -> list[str]:
    """CartField's nested DRF errors -> flat "items[0].sku: ..." lines for one form field."""
    if isinstance(detail, dict):
        return [
            m
            for key, value in detail.items()
            for m in _drf_messages(value, f"{where}.{key}" if where else str(key))
        ]
    if isinstance(detail, list):
        return [
            m
            for i, value in enumerate(detail)
            for m in _drf_messages(value, where if isinstance(value, str) else f"{where}[{i}]")
        ]
    return [f"{where}: {detail}" if where else str(detail)]


def _csv(text: str) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


class TryItForm(forms.Form):
    """The preview's inputs, parsed like the API parses them (same cart field, limits)."""

    cart = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 14, "cols": 60, "class": "vLargeTextField", "spellcheck": "false"}
        ),
        help_text='The cart as the API takes it: {"currency", "items": [{"sku", "category", '
        '"unit_price", "quantity"}], "shipping"}. Amounts are decimal strings.',
    )
    customer_id = forms.CharField(
        required=False,
        max_length=100,
        label="Customer id",
        help_text="Optional. A known customer's stored segments and orders are added, and "
        "per-customer limits use their redemptions.",
    )
    segments = forms.CharField(required=False, help_text="Comma-separated, e.g. vip, staff.")
    orders_count = forms.IntegerField(required=False, min_value=0, initial=0, label="Orders count")
    codes = forms.CharField(
        required=False,
        label="Typed codes",
        help_text="Comma-separated codes the shopper types, if any. This coupon's codes "
        "are left out: the preview applies it automatically.",
    )

    def clean_cart(self) -> Cart:
        try:
            data = json.loads(
                self.cleaned_data["cart"], parse_float=Decimal, parse_constant=_no_constant
            )
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise ValidationError(f"Not valid JSON: {exc}") from None
        try:
            return CartField().run_validation(data)
        except serializers.ValidationError as exc:
            raise ValidationError(_drf_messages(exc.detail)) from None

    def clean_segments(self) -> frozenset[str]:
        segments = _csv(self.cleaned_data["segments"])
        if len(segments) > 50 or any(len(s) > 64 for s in segments):
            raise ValidationError("At most 50 segments of at most 64 characters.")
        return frozenset(segments)

    def clean_codes(self) -> list[str]:
        codes = list(
            dict.fromkeys(selectors.normalize_code(c) for c in _csv(self.cleaned_data["codes"]))
        )
        if len(codes) > MAX_CODES or any(len(c) > 64 for c in codes):
            raise ValidationError(f"At most {MAX_CODES} codes of at most 64 characters.")
        return codes

    def shopper(self) -> Shopper:
        data = self.cleaned_data
        return Shopper(
            id=data["customer_id"].strip() or None,
            segments=data["segments"],
            orders_count=data["orders_count"] or 0,
        )


def sample_cart(c: Coupon) -> dict:
    """A cart the coupon should apply to (its currency, categories or SKUs, minimum, tiers,
    BOGO quantity), so the first preview already shows it at work."""
    cur = c.currency
    need = max([c.min_cart_minor or 0, *(t["threshold_minor"] for t in c.tiers or [])])
    qty = (c.bogo_buy or 1) + (c.bogo_get or 1) if c.type == DiscountType.BOGO else 2
    price = max(money.parse_amount("25", cur), -(-need // qty))
    sku, category = "SAMPLE-1", "general"
    if c.eligible_categories:
        category = sorted(c.eligible_categories)[0]
    elif c.eligible_skus:
        sku = sorted(c.eligible_skus)[0]
    return {
        "currency": cur,
        "items": [
            {
                "sku": sku,
                "category": category,
                "unit_price": money.format_amount(price, cur),
                "quantity": qty,
            }
        ],
        "shipping": money.format_amount(money.parse_amount("5", cur), cur),
    }


def not_live_reasons(c: Coupon) -> list[str]:
    """Why the coupon does not auto-apply today (the preview ignores all of these)."""
    now = timezone.now()
    reasons = []
    if not c.active:
        reasons.append("it is inactive")
    if not c.auto_apply:
        reasons.append("it is not set to auto-apply")
    if c.valid_from and c.valid_from > now:
        reasons.append(f"it starts on {_when(c.valid_from)}")
    if c.valid_to and c.valid_to <= now:
        reasons.append(f"it ended on {_when(c.valid_to)}")
    if not c.codes.filter(active=True, customer__isnull=True).exists():
        # promotions._public_codes: an auto promotion needs one to be recorded against.
        reasons.append("it has no active public code, so it is never auto-applied")
    return reasons


def preview_context(result: Evaluation, cart: Cart, coupon: Coupon, typed: list[str]) -> dict:
    """Evaluation -> plain rows for the template; `own` marks this coupon's rows."""
    cur = cart.currency
    kinds = dict(DiscountType.choices)
    p = result.pricing

    def row(terms: CodeTerms | None, code: str | None, **extra) -> dict:
        return {
            "name": terms.rule.name if terms else "—",
            "code": code or "—",
            "type": kinds.get(terms.rule.type, terms.rule.type) if terms else "—",
            "own": terms is not None and terms.rule.coupon_id == coupon.pk,
            **extra,
        }

    def skipped(s: Skipped) -> dict:
        return row(
            s.terms,
            s.rejection.code or (s.terms.code if s.terms else None),
            reason=s.rejection.reason,
            message=s.rejection.message,
        )

    applied = [
        row(
            a.terms,
            a.terms.code,
            auto=a.terms.code not in typed,
            discount=money.display(a.discount, cur),
            shipping=money.display(a.shipping_discount, cur),
            message=a.message,
            lines=[
                f"{line.sku}: {money.display(d, cur)}"
                for line, d in zip(cart.lines, a.line_discounts, strict=True)
                if d
            ],
        )
        for a in p.applied
    ]
    total = cart.subtotal + cart.shipping - p.discount - p.shipping_discount
    return {
        "totals": [
            (label, money.display(value, cur))
            for label, value in (
                ("Subtotal", cart.subtotal),
                ("Shipping", cart.shipping),
                ("Discount", p.discount),
                ("Shipping discount", p.shipping_discount),
                ("Total", total),
            )
        ],
        "policy": dict(StackingPolicy.choices).get(result.policy, result.policy),
        "exact": result.exact,
        "applied": applied,
        "rejected": [skipped(s) for s in result.rejected],
        "passed_over": [skipped(s) for s in result.passed_over],
        "ineligible": [skipped(s) for s in result.ineligible],
    }


@admin.register(Coupon)
class CouponAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Coupons for marketing. History (simple-history) lists every definition change with
    who made it: staff edits, and automatic actions such as a leak auto-disable with
    their reason."""

    form = CouponAdminForm
    # Fits a 1440 px screen beside the navigation and the filters: the value says the type
    # ("25% (max $50.00)", "$10.00", "Buy 1 get 1 free"), stacking is one column and the
    # window is its dates ("Dec 1 to Dec 31, 2026" with an en dash; the times on hover).
    list_display = (
        "code",
        "value",
        "currency",
        "active",
        "auto_apply",
        "stacking",
        "window",
        "usage",
    )
    list_filter = ("active", "type", "currency", "stackable", "auto_apply", "first_purchase_only")
    search_fields = ["code", "codes__code", "description"]
    ordering = ("code",)
    list_per_page = 50
    actions = ["activate", "deactivate", generate_codes]
    readonly_fields = (
        "uses",
        "version",
        "codes_link",
        "created_at",
        "updated_at",
        "budget_status",
        "abuse_status",
    )
    change_form_template = "admin/coupons/coupon/change_form.html"  # adds "Try it"
    history_list_display = ["active", "disabled_reason"]

    def has_delete_permission(self, request, obj=None):
        # Coupons are stopped, not deleted: redemptions point at them, and the delete
        # confirmation page would list every one of a campaign's codes.
        return False

    fieldsets = (
        (
            None,
            {
                "fields": (
                    "code",
                    "description",
                    "type",
                    "currency",
                    "active",
                    "auto_apply",
                    "priority",
                )
            },
        ),
        (
            "Value",
            {
                "fields": (
                    "percent",
                    "cap",
                    "amount",
                    "tiers_text",
                    "bogo_buy",
                    "bogo_get",
                    "bogo_percent_off",
                )
            },
        ),
        (
            "Conditions",
            {
                "fields": (
                    "min_cart",
                    "eligible_categories",
                    "eligible_skus",
                    "excluded_skus",
                    "eligible_segments",
                    "first_purchase_only",
                )
            },
        ),
        (
            "Limits and window",
            {"fields": ("max_uses_total", "max_uses_per_user", "valid_from", "valid_to")},
        ),
        ("Stacking", {"fields": ("stackable", "stack_group")}),
        (
            "Subscriptions",
            {
                "fields": ("duration", "duration_invoices"),
                "description": "When the coupon is given to a subscription (billing): which "
                "of its invoices with something to charge it discounts.",
            },
        ),
        ("Budget", {"fields": ("budget", "budget_status")}),
        (
            "Abuse protection",
            {"fields": ("abuse_status", "leak_threshold", "farming_action", "limit_by_identity")},
        ),
        ("Usage", {"fields": ("uses", "version", "codes_link", "created_at", "updated_at")}),
    )

    @admin.display(description="budget used")
    def budget_status(self, obj: Coupon) -> str:
        if obj.pk is None or obj.budget_minor is None:
            return "No budget"
        used, budget = obj.budget_used_minor, obj.budget_minor
        return (
            f"{_money_text(used, obj.currency)} of {_money_text(budget, obj.currency)} "
            f"held by reserved and confirmed redemptions ({used / budget:.0%})"
        )

    @admin.display(description="status")
    def abuse_status(self, obj: Coupon) -> str:
        """Why an automatic action stopped the coupon, and its alerts."""
        if obj.pk is None:
            return "—"
        alerts = obj.abuse_alerts.filter(status="open").count()
        url = f"{reverse('admin:abuse_abusealert_changelist')}?coupon__id__exact={obj.pk}"
        link = format_html('<a href="{}">{} open alert(s)</a>', url, alerts)
        if obj.disabled_reason:
            return format_html(
                '<strong style="color:#ba2121">Disabled automatically {}:</strong> {}<br>'
                'Tick "Active" and save, or use the "Activate" action, to re-enable it '
                "after review. {}",
                _when(obj.disabled_at),
                obj.disabled_reason,
                link,
            )
        return link

    def get_readonly_fields(self, request, obj=None):
        # The coupon's identifier is also its public code's string: renaming one would
        # leave the other behind, so it is fixed once created (as in the admin API).
        fields = super().get_readonly_fields(request, obj)
        return ("code", *fields) if obj is not None else fields

    @admin.display(description="value", ordering="type")
    def value(self, obj: Coupon) -> str:
        return format_html(
            '<span title="{}">{}</span>', obj.get_type_display(), coupon_value_text(obj)
        )

    @admin.display(description="stacks", ordering="stackable")
    def stacking(self, obj: Coupon) -> str:
        """Stackable or not, and its stack group."""
        return format_html(
            '{} <span class="stack-group">{}</span>',
            _yes_no_icon(obj.stackable),
            obj.stack_group if obj.stackable else "",
        )

    @admin.display(description="window", ordering="valid_from")
    def window(self, obj: Coupon) -> str:
        return format_html(
            '<span class="coupon-window" title="{} → {}">{}</span>',
            _when(obj.valid_from),
            _when(obj.valid_to),
            window_text(obj.valid_from, obj.valid_to),
        )

    @admin.display(description="usage", ordering="uses")
    def usage(self, obj: Coupon) -> str:
        limit = INFINITY if obj.max_uses_total is None else obj.max_uses_total
        return f"{obj.uses}/{limit}"

    class Media:
        # The list's column rules, and the form showing only the chosen type's value
        # fields (without JavaScript every field shows, as before).
        css = {"all": ["coupons/admin/coupon.css"]}
        js = ["coupons/admin/coupon_form.js"]

    @admin.display(description="codes")
    def codes_link(self, obj: Coupon) -> str:
        """A count and a link, never an inline: a coupon may have a million codes."""
        if obj.pk is None:
            return "—"
        count = obj.codes.count()
        url = f"{reverse('admin:coupons_code_changelist')}?coupon__id__exact={obj.pk}"
        return format_html('<a href="{}">{} code(s)</a>', url, f"{count:,}")

    # --- "try it" preview ---

    def get_urls(self):
        # Before the defaults: their "<path:object_id>/" catch-all would take "<id>/try/".
        view = self.admin_site.admin_view(self.try_view)
        return [path("<path:object_id>/try/", view, name="coupons_coupon_try"), *super().get_urls()]

    def try_view(self, request, object_id):
        """The cart priced as if this coupon were a live auto promotion, next to the live
        ones (services.promotion_preview): read-only, so view permission is enough."""
        coupon = self.get_object(request, object_id)
        if coupon is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, coupon):
            raise PermissionDenied
        initial = {
            "cart": json.dumps(sample_cart(coupon), indent=2),
            "segments": ", ".join(sorted(coupon.eligible_segments)[:1]),
            "customer_id": "preview-shopper"
            if coupon.first_purchase_only or coupon.max_uses_per_user is not None
            else "",
        }
        form = TryItForm(request.POST if request.method == "POST" else None, initial=initial)
        result = None
        if form.is_bound and form.is_valid():
            cart, codes = form.cleaned_data["cart"], form.cleaned_data["codes"]
            evaluation = services.promotion_preview(
                coupon=coupon, codes=codes, shopper=form.shopper(), cart=cart
            )
            typed = [c for c in codes if c != coupon.code]  # promotion_preview drops it
            result = preview_context(evaluation, cart, coupon, typed)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Try {coupon.code}",
            "opts": self.opts,
            "original": coupon,
            "form": form,
            "result": result,
            "not_live": not_live_reasons(coupon),
            "settings_url": reverse("admin:coupons_promotionsettings_changelist")
            if request.user.has_perm("coupons.view_promotionsettings")
            else None,
        }
        return TemplateResponse(request, "admin/coupons/coupon/try_it.html", context)

    # --- writes through the services ---

    def save_via_service(self, request, obj, form, change):
        """coupon_create / coupon_update own the rules, the lock and the cache."""
        if not change:
            return services.coupon_create(fields=form.coupon_fields)
        if form.coupon_changes:
            return services.coupon_update(
                coupon_id=obj.pk, fields=form.coupon_changes, who=request.user.get_username()
            )
        return Coupon.objects.get(pk=obj.pk)

    def delete_model(self, request, obj):
        coupon_id = obj.pk
        super().delete_model(request, obj)
        transaction.on_commit(lambda: selectors.cache_forget(coupon_ids=[coupon_id]))

    def delete_queryset(self, request, queryset):
        # Forgetting the rule is enough: a cached code whose coupon is gone reads as
        # unknown (selectors.code_terms_get_many).
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        transaction.on_commit(lambda: selectors.cache_forget(coupon_ids=ids))

    # --- actions ---

    @admin.action(description="Activate selected coupons", permissions=["change"])
    def activate(self, request, queryset):
        changed = services.coupons_set_active(
            coupon_ids=list(queryset.values_list("pk", flat=True)),
            active=True,
            reason=f"Activated by {request.user.get_username()}",
            who=request.user.get_username(),
        )
        self.message_user(request, f"Activated {changed} coupon(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected coupons (stop now)", permissions=["change"])
    def deactivate(self, request, queryset):
        changed = services.coupons_set_active(
            coupon_ids=list(queryset.values_list("pk", flat=True)),
            active=False,
            reason=f"Deactivated by {request.user.get_username()}",
        )
        self.message_user(
            request, f"Deactivated {changed} coupon(s); they stop applying now.", messages.SUCCESS
        )


# --- code -------------------------------------------------------------------------------


class CodeAdminForm(forms.ModelForm):
    """Codes are stored as the validate path looks them up: stripped and upper case."""

    class Meta:
        model = Code
        fields = ["coupon", "code", "max_uses", "expires_at", "customer", "active"]

    def clean_code(self) -> str:
        code = selectors.normalize_code(self.cleaned_data["code"])
        if not CODE_RE.match(code):
            raise ValidationError("Use 1-64 letters, digits, '-' or '_'.")
        return code

    def clean_max_uses(self):
        # The database refuses uses > max_uses; say it here instead of a 500.
        value = self.cleaned_data.get("max_uses")
        if value is not None and value < self.instance.uses:
            raise ValidationError(
                f"The code has already been used {self.instance.uses} times; deactivate it instead."
            )
        return value


@admin.register(Code)
class CodeAdmin(ServiceSaveMixin, admin.ModelAdmin):
    form = CodeAdminForm
    list_display = ("code", "coupon", "usage", "expires_at", "customer", "active")
    list_filter = ("active", "coupon__type")
    search_fields = ["code"]
    raw_id_fields = ("coupon", "customer")
    list_select_related = ("coupon", "customer")
    readonly_fields = ("uses", "created_at")
    ordering = ("code",)
    # A coupon may have a million codes: skip the second, unfiltered COUNT(*).
    show_full_result_count = False
    actions = ["activate", "deactivate"]

    def get_readonly_fields(self, request, obj=None):
        # Renaming a code would leave the old string cached and valid for a while, and
        # customers already hold it: make a new code instead.
        fields = super().get_readonly_fields(request, obj)
        return ("code", *fields) if obj is not None else fields

    def get_search_results(self, request, queryset, search_term):
        """Prefix match on the normalised code: uses the code's `LIKE` index instead of
        an `UPPER(...) LIKE '%...%'` scan over every code."""
        term = selectors.normalize_code(search_term)
        if not term:
            return queryset, False
        return queryset.filter(code__startswith=term), False

    @admin.display(description="uses", ordering="uses")
    def usage(self, obj: Code) -> str:
        limit = INFINITY if obj.max_uses is None else obj.max_uses
        return f"{obj.uses}/{limit}"

    def save_via_service(self, request, obj, form, change):
        """Only the edited fields, under the code's lock: `uses` as the page loaded it is
        never written back over a concurrent apply or release."""
        if not change:
            return services.code_create(fields=form.cleaned_data)
        return services.code_update(code_id=obj.pk, fields=changed_fields(form))

    def delete_model(self, request, obj):
        text = obj.code
        super().delete_model(request, obj)
        _forget_codes_on_commit([text])

    def delete_queryset(self, request, queryset):
        codes = list(queryset.values_list("code", flat=True))
        super().delete_queryset(request, queryset)
        _forget_codes_on_commit(codes)

    def _set_active(self, queryset, active: bool) -> int:
        return services.codes_set_active(
            code_ids=list(queryset.values_list("pk", flat=True)), active=active
        )

    @admin.action(description="Activate selected codes", permissions=["change"])
    def activate(self, request, queryset):
        changed = self._set_active(queryset, True)
        self.message_user(request, f"Activated {changed} code(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected codes (stop now)", permissions=["change"])
    def deactivate(self, request, queryset):
        changed = self._set_active(queryset, False)
        self.message_user(request, f"Deactivated {changed} code(s).", messages.SUCCESS)


# --- redemption -------------------------------------------------------------------------


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A ledger: only the checkout services move a redemption, so nobody edits it here."""

    list_display = (
        "id",
        "code",
        "coupon",
        "customer",
        "order_id",
        "status",
        "discount",
        "created_at",
        "expires_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ["order_id", "code__code", "customer__external_id"]
    list_select_related = ("code", "coupon", "customer")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    @admin.display(description="discount", ordering="discount_minor")
    def discount(self, obj: Redemption) -> str:
        return money.display(obj.discount_minor, obj.currency)


# --- customer ---------------------------------------------------------------------------


@admin.register(Customer)
class CustomerAdmin(ServiceSaveMixin, admin.ModelAdmin):
    list_display = ("external_id", "segments", "orders_count", "created_at")
    list_filter = ("created_at",)
    search_fields = ["external_id"]
    readonly_fields = ("orders_count", "created_at")
    ordering = ("external_id",)

    def get_readonly_fields(self, request, obj=None):
        # Bound codes are cached with the customer's external id: changing it would keep
        # the old id valid for the cache's lifetime, and it is the storefront's key anyway.
        fields = super().get_readonly_fields(request, obj)
        return ("external_id", *fields) if obj is not None else fields

    def save_via_service(self, request, obj, form, change):
        """Only the edited fields, under the customer's lock: `orders_count` as the page
        loaded it is never written back over a concurrent confirm."""
        if not change:
            return services.customer_create(fields=form.cleaned_data)
        return services.customer_update(customer_id=obj.pk, fields=changed_fields(form))


# --- promotion settings -----------------------------------------------------------------


@admin.register(PromotionSettings)
class PromotionSettingsAdmin(admin.ModelAdmin):
    """A singleton: the list page opens the one row (created with the deployment's
    STACKING_POLICY, so opening it changes nothing); it is never added twice or deleted.
    Saving refreshes every process's compiled promotions (coupons/apps.py)."""

    fieldsets = (
        (
            None,
            {
                "fields": ("stacking_policy", "updated_at"),
                "description": "How typed codes and automatic promotions combine on one order. "
                "Within the policy the engine always picks the combination that "
                "saves the shopper the most.",
            },
        ),
    )
    readonly_fields = ("updated_at",)
    radio_fields = {"stacking_policy": admin.VERTICAL}  # every choice and its explanation

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        PromotionSettings.objects.get_or_create(
            pk=1, defaults={"stacking_policy": settings.STACKING_POLICY}
        )
        return HttpResponseRedirect(reverse("admin:coupons_promotionsettings_change", args=[1]))

    def has_add_permission(self, request):
        return (
            super().has_add_permission(request)
            and not PromotionSettings.objects.filter(pk=1).exists()
        )

    def has_delete_permission(self, request, obj=None):
        return False
