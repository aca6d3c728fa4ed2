"""Billing reads, for the API and for other apps (entitlements asks `access_plan`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone

from billing import clock
from billing.models import (
    BillingCustomer,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from core.errors import NotFound


def plans_active() -> QuerySet[Plan]:
    return Plan.objects.filter(active=True).order_by("amount_minor", "code")


def plan_get(code: str) -> Plan:
    try:
        return Plan.objects.get(code=code)
    except Plan.DoesNotExist:
        raise NotFound("plan_not_found", f"No plan {code!r}.") from None


def plan_default() -> Plan | None:
    return Plan.objects.filter(is_default=True).first()


def customer_get(customer_id: str) -> BillingCustomer:
    try:
        return BillingCustomer.objects.select_related("test_clock").get(customer_id=customer_id)
    except BillingCustomer.DoesNotExist:
        raise NotFound("customer_not_found", f"No billing customer {customer_id!r}.") from None


def _subscriptions() -> QuerySet[Subscription]:
    return Subscription.objects.select_related("plan", "customer", "pending_plan")


def subscription_get(sub_id) -> Subscription:
    try:
        return _subscriptions().get(pk=sub_id)
    except (Subscription.DoesNotExist, ValueError, ValidationError):
        raise NotFound("subscription_not_found", "No such subscription.") from None


def subscriptions_for_customer(customer_id: str) -> QuerySet[Subscription]:
    return _subscriptions().filter(customer__customer_id=customer_id).order_by("-created_at")


def latest_invoice_ids(sub_ids: list) -> dict:
    """Subscription id -> its newest invoice id (one query)."""
    rows = (
        Invoice.objects.filter(subscription_id__in=sub_ids)
        .order_by("subscription_id", "-created_at", "-number")
        .distinct("subscription_id")
        .values_list("subscription_id", "pk")
    )
    return dict(rows)


def _invoices() -> QuerySet[Invoice]:
    return Invoice.objects.select_related("customer").prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.order_by("position"))
    )


def invoice_get(invoice_id) -> Invoice:
    try:
        return _invoices().get(pk=invoice_id)
    except (Invoice.DoesNotExist, ValueError, ValidationError):
        raise NotFound("invoice_not_found", "No such invoice.") from None


def invoices_for_customer(customer_id: str) -> QuerySet[Invoice]:
    return _invoices().filter(customer__customer_id=customer_id).order_by("-created_at", "-number")


@dataclass(frozen=True)
class Access:
    """Which plan gives a customer features now, and why: `subscription` (trialing,
    active), `grace` (past due, inside BILLING_GRACE_DAYS of the first failure),
    `default` (nothing live, or past due beyond the grace). `until`: when this answer
    changes by time alone (a trial's or grace's end), if it does. `now`: the customer's
    time (their test clock's, if any); `period`: the live subscription's current billing
    period (metered usage is counted per period)."""

    plan: Plan | None
    source: str
    status: str | None
    until: datetime | None
    trial: bool
    now: datetime | None = None
    period: tuple[datetime, datetime] | None = None
    on_test_clock: bool = False


def access_plan(customer_id: str) -> Access:
    sub = (
        _subscriptions()
        .select_related("customer__test_clock")
        .filter(
            customer__customer_id=customer_id,
            status__in=(
                SubscriptionStatus.TRIALING,
                SubscriptionStatus.ACTIVE,
                SubscriptionStatus.PAST_DUE,
            ),
        )
        .first()
    )
    if sub is None:
        customer = (
            BillingCustomer.objects.select_related("test_clock")
            .filter(customer_id=customer_id)
            .first()
        )
        now = clock.now_for(customer) if customer is not None else timezone.now()
        on_clock = customer is not None and customer.test_clock_id is not None
        return Access(plan_default(), "default", None, None, False, now, None, on_clock)
    now = clock.now_for(sub.customer)
    on_clock = sub.customer.test_clock_id is not None
    period = (sub.current_period_start, sub.current_period_end)
    if sub.status == SubscriptionStatus.TRIALING:
        return Access(
            sub.plan, "subscription", sub.status, sub.trial_end, True, now, period, on_clock
        )
    if sub.status == SubscriptionStatus.ACTIVE:
        return Access(sub.plan, "subscription", sub.status, None, False, now, period, on_clock)
    grace_end = (sub.past_due_since or now) + timedelta(days=settings.BILLING_GRACE_DAYS)
    if now < grace_end:
        return Access(sub.plan, "grace", sub.status, grace_end, False, now, period, on_clock)
    return Access(plan_default(), "default", sub.status, None, False, now, period, on_clock)


# --- for referrals ----------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFacts:
    """What referrals needs of a billing customer: identity for self-referral checks,
    whether they have paid, their credit, and their time (test clock or wall clock)."""

    exists: bool
    email: str
    payment_method: str
    has_paid: bool
    credit_balance_minor: int
    currency: str
    now: datetime
    test_clock_id: str | None


def customer_facts(customer_id: str) -> CustomerFacts:
    customer = (
        BillingCustomer.objects.select_related("test_clock").filter(customer_id=customer_id).first()
    )
    if customer is None:
        return CustomerFacts(False, "", "", False, 0, "USD", timezone.now(), None)
    paid = Invoice.objects.filter(customer=customer, amount_paid_minor__gt=0).exists()
    return CustomerFacts(
        True,
        customer.email,
        customer.payment_method,
        paid,
        customer.credit_balance_minor,
        customer.currency,
        clock.now_for(customer),
        str(customer.test_clock_id) if customer.test_clock_id else None,
    )


def customers_on_clock(clock_id: str) -> list[str]:
    return list(
        BillingCustomer.objects.filter(test_clock__id=clock_id).values_list(
            "customer_id", flat=True
        )
    )


def signups_between(start: datetime, end: datetime) -> list[str]:
    """Customer ids of billing customers who signed up in [start, end): `signed_up_at`,
    the creation on the customer's clock (a test clock's time for a customer on one)."""
    return list(
        BillingCustomer.objects.filter(signed_up_at__gte=start, signed_up_at__lt=end).values_list(
            "customer_id", flat=True
        )
    )


def customers_before(moment: datetime) -> int:
    """Billing customers who signed up before `moment` (on their clocks)."""
    return BillingCustomer.objects.filter(signed_up_at__lt=moment).count()


def signups_per_week(
    start: datetime, end: datetime, *, among: QuerySet | Iterable[str] | None = None
) -> dict[date, int]:
    """Billing customers who signed up in [start, end), counted per week (the Monday, UTC,
    of `signed_up_at`, on each customer's clock); weeks without any are absent. `among`
    (ids, or a query of ids: it stays a subquery) keeps only those customers. For the
    referrals overview."""
    customers = BillingCustomer.objects.filter(signed_up_at__gte=start, signed_up_at__lt=end)
    if among is not None:
        customers = customers.filter(customer_id__in=among)
    rows = (
        customers.annotate(week=TruncWeek("signed_up_at", tzinfo=UTC))
        .values("week")
        .annotate(n=Count("pk"))
        .order_by("week")
    )
    return {row["week"].date(): row["n"] for row in rows}
