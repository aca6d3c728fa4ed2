"""The admin API's coupon definition: the seed's JSON as is (004 "Coupon definition"),
plus stack_group, currency, auto_apply, active, tiers and bogo (API.md)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers
from rest_framework.fields import empty

from core import money
from core.api.fields import MAX_POSITIVE_INT, MoneyIn, ValidityField
from coupons.engine.types import DISCOUNT_TYPES, PERCENTAGE
from coupons.models import Coupon, Duration

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class WholeOnPatch:
    """For a nested object that a PATCH replaces as a whole (the bogo terms, a tier): it is
    validated exactly as on create, required fields and defaults included. DRF's partial
    update would skip those inside the nested object too, and half an object would reach
    the model (a 500 for `{"bogo": {"buy": 2}}`)."""

    def run_validation(self, data=empty):
        if data is empty or self.parent is None or not getattr(self.root, "partial", False):
            return super().run_validation(data)
        return type(self)().run_validation(data)  # unbound: never partial


def _names(max_length: int = 100):
    return serializers.ListField(
        child=serializers.CharField(max_length=max_length), required=False, max_length=1000
    )


class ConditionsIn(serializers.Serializer):
    min_cart_value = MoneyIn(required=False, allow_null=True)
    eligible_categories = _names()
    eligible_skus = _names()
    excluded_skus = _names()
    eligible_user_segments = _names(64)  # Coupon.eligible_segments holds 64 characters
    first_purchase_only = serializers.BooleanField(required=False)
    max_uses_total = serializers.IntegerField(
        min_value=1, max_value=MAX_POSITIVE_INT, required=False, allow_null=True
    )
    max_uses_per_user = serializers.IntegerField(
        min_value=1, max_value=MAX_POSITIVE_INT, required=False, allow_null=True
    )
    valid_from = ValidityField(end_of_day=False, required=False, allow_null=True)
    valid_to = ValidityField(end_of_day=True, required=False, allow_null=True)
    stackable = serializers.BooleanField(required=False)

    class Meta:
        ref_name = "CouponConditions"


class TierIn(WholeOnPatch, serializers.Serializer):
    """A spend tier; PATCH replaces the tiers as a whole (each tier in full)."""

    threshold = MoneyIn()
    discount = MoneyIn()

    class Meta:
        ref_name = "CouponTier"


class BogoIn(WholeOnPatch, serializers.Serializer):
    """Buy `buy`, get `get` at `percent_off`; PATCH replaces it as a whole."""

    # At most 1000 (the columns, PositiveSmallIntegerField, would hold 32767).
    buy = serializers.IntegerField(min_value=1, max_value=1000)
    get = serializers.IntegerField(min_value=1, max_value=1000)
    percent_off = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(100),
        required=False,
        default=Decimal(100),
    )

    class Meta:
        ref_name = "CouponBogo"


def duration_errors(duration: str, invoices: int | None) -> dict:
    """The coupon_duration_invoices_matches rule, by field: a repeating coupon needs its
    number of invoices, the other durations take none."""
    if duration == Duration.REPEATING and (invoices is None or invoices < 1):
        return {"duration_invoices": ["Required when duration is repeating (at least 1)."]}
    if duration != Duration.REPEATING and invoices is not None:
        return {"duration_invoices": ["Only a repeating coupon takes a number of invoices."]}
    return {}


class CouponDefinitionIn(serializers.Serializer):
    coupon_id = serializers.RegexField(CODE_PATTERN, required=False)
    code = serializers.RegexField(CODE_PATTERN, required=False)
    type = serializers.ChoiceField(choices=DISCOUNT_TYPES)
    value = serializers.DecimalField(
        max_digits=16, decimal_places=3, min_value=Decimal(0), required=False, allow_null=True
    )
    discount_cap = MoneyIn(required=False, allow_null=True)
    currency = serializers.CharField(min_length=3, max_length=3, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    conditions = ConditionsIn(required=False)
    stackable = serializers.BooleanField(required=False)
    stack_group = serializers.CharField(max_length=40, required=False, allow_blank=True)
    auto_apply = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)
    priority = serializers.IntegerField(required=False, min_value=-1000, max_value=1000)
    # many=True hands max_length to the ListSerializer; the stubs do not know it.
    tiers = TierIn(many=True, required=False, max_length=50)  # type: ignore[call-arg]
    bogo = BogoIn(required=False)
    budget = MoneyIn(
        required=False,
        allow_null=True,
        help_text="Total discount budget (merchandise + shipping); null: none.",
    )
    leak_threshold = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=10_000_000,
        help_text="Unique customers per hour above which the public code is disabled "
        "(null: the site default, ABUSE_LEAK_THRESHOLD).",
    )
    farming_action = serializers.ChoiceField(
        choices=["flag", "block"],
        required=False,
        help_text="Multi-account use of a first-purchase / once-per-customer coupon: flag "
        "for review, or block (reason multi_account_suspected).",
    )
    limit_by_identity = serializers.BooleanField(
        required=False,
        help_text="The per-customer limit also counts uses by the same "
        "device, IP, email or payment fingerprint.",
    )
    duration = serializers.ChoiceField(
        choices=Duration.values,
        required=False,
        help_text="Subscriptions (billing): the coupon discounts the first invoice with "
        "something to charge (once, the default), the first duration_invoices of them "
        "(repeating) or every one (forever). On PATCH, duration without duration_invoices "
        "means none.",
    )
    duration_invoices = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_POSITIVE_INT,
        help_text="Repeating coupons: how many invoices (required, at least 1); null for "
        "the other durations.",
    )

    class Meta:
        ref_name = "CouponDefinition"

    def validate_currency(self, value: str) -> str:
        value = value.upper()
        if not money.is_currency(value):
            raise serializers.ValidationError("Enter an ISO 4217 currency code.")
        return value

    def validate(self, attrs):
        if not self.partial and not (attrs.get("coupon_id") or attrs.get("code")):
            raise serializers.ValidationError({"coupon_id": ["Give coupon_id or code."]})
        if (
            attrs.get("coupon_id")
            and attrs.get("code")
            and attrs["coupon_id"].upper() != attrs["code"].upper()
        ):
            raise serializers.ValidationError({"code": ["coupon_id and code differ."]})
        # duration and duration_invoices are one setting: given a duration (or creating,
        # where it defaults to once), the pair is checked as sent, as a nested object is
        # (WholeOnPatch). duration_invoices alone on a PATCH meets the stored duration in
        # definition_to_fields.
        if "duration" in attrs or not self.partial:
            errors = duration_errors(
                attrs.get("duration", Duration.ONCE), attrs.get("duration_invoices")
            )
            if errors:
                raise serializers.ValidationError(errors)
        return attrs


def definition_to_fields(data: dict, *, instance: Coupon | None = None) -> dict:  # noqa: C901 - one `if <field> in data` per API field, in order
    """Validated API input -> Coupon model fields (money to minor units by currency)."""
    currency = data.get("currency") or (instance.currency if instance else "USD")
    kind = data.get("type") or (instance.type if instance else PERCENTAGE)
    errors: dict = {}
    fields: dict = {}

    def minor(value, name):
        if value is None:
            return None
        try:
            return money.parse_amount(value, currency)
        except money.MoneyError as exc:
            errors[name] = [str(exc)]
            return None

    code = data.get("coupon_id") or data.get("code")
    if code:
        fields["code"] = code.upper()
    for name in (
        "description",
        "stack_group",
        "auto_apply",
        "active",
        "priority",
        "stackable",
        "leak_threshold",
        "farming_action",
        "limit_by_identity",
    ):
        if name in data:
            fields[name] = data[name]
    if "budget" in data:
        fields["budget_minor"] = minor(data["budget"], "budget")
    if "currency" in data or instance is None:
        fields["currency"] = currency
    if "type" in data:
        fields["type"] = kind
    if "value" in data or "type" in data:
        value = data.get("value")
        fields["percent_bp"] = None
        fields["amount_minor"] = None
        if kind == PERCENTAGE and value is not None:
            bp = value * 100
            if bp != bp.to_integral_value():
                errors["value"] = ["At most two decimal places of a percent."]
            else:
                fields["percent_bp"] = int(bp)
        elif kind == "fixed":
            fields["amount_minor"] = minor(value, "value")
    if "discount_cap" in data:
        fields["cap_minor"] = minor(data["discount_cap"], "discount_cap")
    if "tiers" in data:
        fields["tiers"] = [
            {
                "threshold_minor": minor(t["threshold"], "tiers"),
                "discount_minor": minor(t["discount"], "tiers"),
            }
            for t in data["tiers"]
        ]
    if "bogo" in data:
        bogo = data["bogo"]
        fields["bogo_buy"], fields["bogo_get"] = bogo["buy"], bogo["get"]
        fields["bogo_percent_bp"] = int(bogo.get("percent_off", Decimal(100)) * 100)
    conditions = data.get("conditions") or {}
    mapping = {
        "eligible_categories": "eligible_categories",
        "eligible_skus": "eligible_skus",
        "excluded_skus": "excluded_skus",
        "eligible_user_segments": "eligible_segments",
        "first_purchase_only": "first_purchase_only",
        "max_uses_total": "max_uses_total",
        "max_uses_per_user": "max_uses_per_user",
        "valid_from": "valid_from",
        "valid_to": "valid_to",
        "stackable": "stackable",
    }
    for source, target in mapping.items():
        if source in conditions:
            fields[target] = conditions[source]
    if "min_cart_value" in conditions:
        fields["min_cart_minor"] = minor(conditions["min_cart_value"], "min_cart_value")
    if "duration" in data:  # the pair as sent: no duration_invoices means none
        fields["duration"] = data["duration"]
        fields["duration_invoices"] = data.get("duration_invoices")
    elif "duration_invoices" in data:  # PATCH: the number alone, on the stored duration
        fields["duration_invoices"] = data["duration_invoices"]
        stored = instance.duration if instance is not None else Duration.ONCE
        errors.update(duration_errors(stored, data["duration_invoices"]))
    if errors:
        raise serializers.ValidationError(errors)
    return fields


def _percent(bp: int) -> str:
    """2500 -> "25", 1250 -> "12.5", 10000 -> "100" (never exponent notation)."""
    text = format(Decimal(bp) / 100, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def coupon_body(c: Coupon) -> dict:
    cur = c.currency

    def fmt(v):
        return None if v is None else money.format_amount(v, cur)

    value = None
    if c.percent_bp is not None:
        value = _percent(c.percent_bp)
    elif c.amount_minor is not None:
        value = fmt(c.amount_minor)
    return {
        "id": c.pk,
        "coupon_id": c.code,
        "code": c.code,
        "type": c.type,
        "value": value,
        "discount_cap": fmt(c.cap_minor),
        "currency": cur,
        "description": c.description,
        "conditions": {
            "min_cart_value": fmt(c.min_cart_minor),
            "eligible_categories": c.eligible_categories,
            "eligible_skus": c.eligible_skus,
            "excluded_skus": c.excluded_skus,
            "eligible_user_segments": c.eligible_segments,
            "first_purchase_only": c.first_purchase_only,
            "max_uses_total": c.max_uses_total,
            "max_uses_per_user": c.max_uses_per_user,
            "valid_from": c.valid_from.isoformat() if c.valid_from else None,
            "valid_to": c.valid_to.isoformat() if c.valid_to else None,
            "stackable": c.stackable,
        },
        "stackable": c.stackable,
        "stack_group": c.stack_group,
        "auto_apply": c.auto_apply,
        "active": c.active,
        "priority": c.priority,
        "tiers": [
            {"threshold": fmt(t["threshold_minor"]), "discount": fmt(t["discount_minor"])}
            for t in c.tiers or []
        ],
        "bogo": (
            {
                "buy": c.bogo_buy,
                "get": c.bogo_get,
                "percent_off": _percent(c.bogo_percent_bp or 10_000),
            }
            if c.bogo_buy
            else None
        ),
        "uses": c.uses,
        "budget": fmt(c.budget_minor),
        "budget_used": fmt(c.budget_used_minor),
        "leak_threshold": c.leak_threshold,
        "farming_action": c.farming_action,
        "limit_by_identity": c.limit_by_identity,
        "duration": c.duration,
        "duration_invoices": c.duration_invoices,
        "disabled_reason": c.disabled_reason,
        "disabled_at": c.disabled_at.isoformat() if c.disabled_at else None,
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }


class CouponOut(serializers.Serializer):
    """Documentation of coupon_body()."""

    id = serializers.IntegerField()
    coupon_id = serializers.CharField()
    code = serializers.CharField()
    type = serializers.ChoiceField(choices=DISCOUNT_TYPES)
    value = serializers.CharField(allow_null=True)
    discount_cap = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    description = serializers.CharField()
    conditions = serializers.DictField()
    stackable = serializers.BooleanField()
    stack_group = serializers.CharField()
    auto_apply = serializers.BooleanField()
    active = serializers.BooleanField()
    priority = serializers.IntegerField()
    tiers = serializers.ListField(child=serializers.DictField())
    bogo = serializers.DictField(allow_null=True)
    uses = serializers.IntegerField()
    budget = serializers.CharField(allow_null=True)
    budget_used = serializers.CharField(help_text="Held by reserved and confirmed redemptions.")
    leak_threshold = serializers.IntegerField(allow_null=True)
    farming_action = serializers.ChoiceField(choices=["flag", "block"])
    limit_by_identity = serializers.BooleanField()
    duration = serializers.ChoiceField(choices=Duration.values)
    duration_invoices = serializers.IntegerField(
        allow_null=True, help_text="Repeating coupons: how many invoices it discounts."
    )
    disabled_reason = serializers.CharField(help_text="Why it was disabled automatically.")
    disabled_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Coupon"


MAX_PAGE = 500


class CouponListQuery(serializers.Serializer):
    """Query parameters of the coupon list; anything else is a 400, never ignored."""

    active = serializers.BooleanField(required=False)
    type = serializers.ChoiceField(choices=DISCOUNT_TYPES, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, default=0)

    class Meta:
        ref_name = "CouponListQuery"


class CouponListOut(serializers.Serializer):
    count = serializers.IntegerField()
    results = CouponOut(many=True)

    class Meta:
        ref_name = "CouponList"
