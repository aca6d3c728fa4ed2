"""Billing's input serializers and the output shapes of API.md's "Billing" section (the
output serializers document the schema; the bodies are built in presenters.py)."""

from __future__ import annotations

import re
from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Interval
from core import money
from core.api.fields import ValidityField
from core.money import MoneyError, parse_amount

FEATURE_KEY = r"^[a-z][a-z0-9_]{0,49}$"
MAX_FEATURES = 100


def validate_features(value) -> None:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Enter an object of feature name to value.")
    if len(value) > MAX_FEATURES:
        raise serializers.ValidationError(f"At most {MAX_FEATURES} features.")
    for key, item in value.items():
        if not re.match(FEATURE_KEY, key):
            raise serializers.ValidationError(
                f"{key!r}: feature names are lower-case letters, digits and underscores."
            )
        if item is None or isinstance(item, bool):  # null: an unlimited limit
            continue
        if not isinstance(item, int) or not 0 <= item <= 10**12:
            raise serializers.ValidationError(
                f"{key!r}: a feature is true/false, a whole number from 0 (a limit) or null "
                "(unlimited)."
            )


@extend_schema_field(OpenApiTypes.STR)
class AmountField(serializers.Field):
    """A money amount as a decimal string or JSON number; kept as given (a Decimal or a
    string) for parse_amount, which needs the currency."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
            raise serializers.ValidationError(
                'Enter an amount as a decimal string such as "29.00".'
            )
        try:
            # The shape and range only (three places at most); the currency's own places
            # are checked where the currency is known (minor()).
            parse_amount(data, "BHD")
        except MoneyError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return data

    def to_representation(self, value):
        return value


def minor(value, currency: str, field: str) -> int:
    try:
        return parse_amount(value, currency)
    except MoneyError as exc:
        raise serializers.ValidationError({field: [str(exc)]}) from None


def currency_field(**kw) -> serializers.CharField:
    return serializers.CharField(min_length=3, max_length=3, help_text="ISO 4217", **kw)


def check_currency(value: str) -> str:
    if not money.is_currency(value):
        raise serializers.ValidationError("Unknown ISO 4217 currency.")
    return value


class PlanIn(serializers.Serializer):
    code = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=100)
    amount = AmountField(help_text='Decimal string such as "29.00".')
    currency = currency_field(default="USD")
    interval = serializers.ChoiceField(choices=Interval.values, default=Interval.MONTH)
    trial_days = serializers.IntegerField(min_value=0, max_value=730, default=0)
    default = serializers.BooleanField(default=False)
    active = serializers.BooleanField(default=True)
    features = serializers.JSONField(default=dict, validators=[validate_features])

    class Meta:
        ref_name = "PlanIn"

    def validate_currency(self, value):
        return check_currency(value.upper())

    def validate(self, attrs):
        attrs["amount_minor"] = minor(attrs.pop("amount"), attrs["currency"], "amount")
        return attrs


class PlanPatchIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    amount = AmountField(required=False)
    currency = currency_field(required=False)
    interval = serializers.ChoiceField(choices=Interval.values, required=False)
    trial_days = serializers.IntegerField(min_value=0, max_value=730, required=False)
    default = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)
    features = serializers.JSONField(required=False, validators=[validate_features])

    class Meta:
        ref_name = "PlanPatchIn"

    def validate_currency(self, value):
        return check_currency(value.upper())


def plan_fields(data: dict) -> dict:
    """Validated input -> Plan model fields."""
    names = {"default": "is_default"}
    return {names.get(k, k): v for k, v in data.items()}


class PlanOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    interval = serializers.CharField()
    trial_days = serializers.IntegerField()
    default = serializers.BooleanField()
    active = serializers.BooleanField()
    features = serializers.DictField()

    class Meta:
        ref_name = "Plan"


class PlanListOut(serializers.Serializer):
    results = PlanOut(many=True)

    class Meta:
        ref_name = "PlanList"


class CustomerIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    payment_method = serializers.CharField(max_length=100, required=False, allow_blank=True)
    currency = currency_field(required=False)
    test_clock = serializers.UUIDField(required=False, allow_null=True)

    class Meta:
        ref_name = "BillingCustomerIn"

    def validate_currency(self, value):
        return check_currency(value.upper())


class CustomerOut(serializers.Serializer):
    customer_id = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    payment_method = serializers.CharField(allow_null=True)
    credit_balance = serializers.CharField()
    currency = serializers.CharField()
    test_clock = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "BillingCustomer"


CUSTOMER_ID = serializers.CharField(max_length=100)


class SubscriptionIn(serializers.Serializer):
    customer_id = serializers.CharField(max_length=100, required=False)
    plan = serializers.CharField(max_length=50)
    coupon_code = serializers.CharField(
        max_length=64, required=False, allow_null=True, allow_blank=True
    )
    trial = serializers.BooleanField(required=False, allow_null=True)

    class Meta:
        ref_name = "SubscriptionIn"


class DiscountOut(serializers.Serializer):
    coupon = serializers.CharField()
    remaining_invoices = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "SubscriptionDiscount"


class SubscriptionOut(serializers.Serializer):
    id = serializers.CharField()
    customer_id = serializers.CharField()
    plan = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["trialing", "active", "past_due", "cancelled", "expired", "incomplete"]
    )
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    trial_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    pending_plan = serializers.CharField(allow_null=True)
    discount = DiscountOut(allow_null=True)
    latest_invoice = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Subscription"


class SubscriptionListQuery(serializers.Serializer):
    customer_id = serializers.CharField(max_length=100, required=False)

    class Meta:
        ref_name = "SubscriptionListQuery"


class SubscriptionListOut(serializers.Serializer):
    results = SubscriptionOut(many=True)

    class Meta:
        ref_name = "SubscriptionList"


class ChangeIn(serializers.Serializer):
    plan = serializers.CharField(max_length=50)
    proration_date = ValidityField(end_of_day=False, required=False, allow_null=True)

    class Meta:
        ref_name = "SubscriptionChangeIn"


class PreviewIn(serializers.Serializer):
    plan = serializers.CharField(max_length=50)
    proration_date = ValidityField(end_of_day=False, required=False, allow_null=True)

    class Meta:
        ref_name = "SubscriptionPreviewIn"


class LineOut(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["subscription", "proration", "discount", "credit", "usage"]
    )
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    amount = serializers.CharField()

    class Meta:
        ref_name = "InvoiceLine"


class PreviewOut(serializers.Serializer):
    plan = serializers.CharField()
    effective = serializers.ChoiceField(choices=["now", "period_end"])
    amount_due = serializers.CharField()
    currency = serializers.CharField()
    lines = LineOut(many=True)
    proration_date = serializers.DateTimeField()

    class Meta:
        ref_name = "SubscriptionChangePreview"


class CancelIn(serializers.Serializer):
    at_period_end = serializers.BooleanField(default=True)

    class Meta:
        ref_name = "SubscriptionCancelIn"


class InvoiceOut(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(allow_null=True)
    customer_id = serializers.CharField()
    subscription_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["draft", "open", "paid", "void", "uncollectible"])
    billing_reason = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    lines = LineOut(many=True)
    subtotal = serializers.CharField()
    discount = serializers.CharField()
    credit_applied = serializers.CharField()
    total = serializers.CharField()
    amount_paid = serializers.CharField()
    amount_due = serializers.CharField()
    amount_refunded = serializers.CharField()
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Invoice"


class InvoiceListQuery(serializers.Serializer):
    customer_id = serializers.CharField(max_length=100)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)

    class Meta:
        ref_name = "InvoiceListQuery"


class InvoiceListOut(serializers.Serializer):
    results = InvoiceOut(many=True)

    class Meta:
        ref_name = "InvoiceList"


class RefundIn(serializers.Serializer):
    amount = AmountField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class Meta:
        ref_name = "RefundIn"


class CreditNoteOut(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField()
    invoice = serializers.CharField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    reason = serializers.CharField()

    class Meta:
        ref_name = "CreditNote"


class TestClockIn(serializers.Serializer):
    frozen_time = ValidityField(end_of_day=False)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)

    class Meta:
        ref_name = "TestClockIn"


class TestClockAdvanceIn(serializers.Serializer):
    frozen_time = ValidityField(end_of_day=False)

    class Meta:
        ref_name = "TestClockAdvanceIn"


class TestClockOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    frozen_time = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["ready", "advancing"])

    class Meta:
        ref_name = "TestClock"
