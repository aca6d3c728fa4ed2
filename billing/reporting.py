"""Finance reads for the admin's billing overview and dunning pages: MRR by month, new
and churned subscriptions, dunning recovery, trial conversion, and what is past due now.

Selectors only (nothing is written). Months are calendar months in the site's time zone.
Money is integer minor units per currency, never mixed across currencies and never a
float; a rate is a Decimal (None when there is nothing to divide by). The definitions,
as docs/billing-admin.md states them:

- **MRR of a month** (per currency): the recurring revenue in force at the month's end.
  Every paid period invoice (`subscription_create` or `subscription_cycle`, status
  `paid`) whose period holds the month's last moment counts its charge after discount
  (`subtotal - discount`; credit is a way of paying, not a reduction), a yearly plan's
  divided by 12, unless its subscription had ended by then. A customer on a test clock
  is measured at its clock's time when that falls inside the month, and not at all for
  months after it (they have not happened on that clock). The sum is rounded half-up to
  the minor unit once per month and currency.
- **New** subscriptions of a month: those that started in it, as a trial or paid
  (`-> trialing`, or `-> active` from new or `incomplete`); **churned**: those that ended
  in it (`-> cancelled` or `-> expired` from `trialing`, `active` or `past_due`). A
  subscribe whose first charge was declined (`incomplete -> expired`) is neither.
- **Dunning recovery**: each move `active -> past_due` starts an episode, counted in the
  month it started; it is *recovered* when the subscription's next status change is back
  to `active`, *lost* when it is `cancelled`, *open* while it has none. The rate is
  recovered / all episodes.
- **Trial conversion**: trials that ended in the month (`trialing ->` anything else);
  *converted* are those that moved to `active`. The rate is converted / ended.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Least, TruncMonth
from django.utils import timezone

from billing.models import (
    BillingReason,
    Invoice,
    InvoiceStatus,
    Subscription,
    SubscriptionStatus,
    SubscriptionTransition,
)

PERIOD_REASONS = (BillingReason.SUBSCRIPTION_CREATE, BillingReason.SUBSCRIPTION_CYCLE)
STARTED = ("trialing", "active", "past_due")  # a subscription that had begun
ENDED = ("cancelled", "expired")
MAX_MONTHS = 36


# --- months -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Month:
    start: datetime  # the month's first moment, in the site's time zone
    end: datetime  # the next month's first moment

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"


def _first_moment(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=timezone.get_current_timezone())


def months_ending(last: date, count: int) -> list[Month]:
    """`count` calendar months, oldest first, the last one holding `last`."""
    index = last.year * 12 + last.month - 1
    months = []
    for i in range(index - count + 1, index + 1):
        year, month0 = divmod(i, 12)
        nyear, nmonth0 = divmod(i + 1, 12)
        months.append(Month(_first_moment(year, month0 + 1), _first_moment(nyear, nmonth0 + 1)))
    return months


def ratio(part: int, whole: int) -> Decimal | None:
    return Decimal(part) / Decimal(whole) if whole else None


# --- MRR --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MrrMonth:
    amount_minor: int
    subscriptions: int  # paying subscriptions counted in it


def _mrr_month(month: Month, as_of: datetime) -> dict[str, MrrMonth]:
    """One month's MRR per currency: one aggregate over the period invoices in force."""
    customer_now = Coalesce(
        F("customer__test_clock__frozen_time"), Value(as_of, output_field=DateTimeField())
    )
    moment = ExpressionWrapper(
        Least(Value(month.end, output_field=DateTimeField()), customer_now),
        output_field=DateTimeField(),
    )
    rows = (
        Invoice.objects.filter(
            billing_reason__in=PERIOD_REASONS,
            status=InvoiceStatus.PAID,
            subscription__isnull=False,
            subtotal_minor__gt=F("discount_minor"),  # a $0 trial or fully discounted: none
            period_start__lt=month.end,
            period_end__gt=month.start,
        )
        .alias(customer_now=customer_now, moment=moment)
        .filter(customer_now__gte=month.start)  # not a month in a clock's future
        .filter(period_start__lt=F("moment"), period_end__gte=F("moment"))
        .filter(Q(subscription__ended_at__isnull=True) | Q(subscription__ended_at__gt=F("moment")))
        .values("currency", "plan__interval")
        .annotate(
            charged=Sum(F("subtotal_minor") - F("discount_minor")),
            subscriptions=Count("subscription", distinct=True),
        )
        .order_by()
    )
    twelfths: dict[str, int] = defaultdict(int)  # MRR x 12, exact
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        per_year = row["plan__interval"] == "year"
        twelfths[row["currency"]] += row["charged"] * (1 if per_year else 12)
        counts[row["currency"]] += row["subscriptions"]
    # Half-up to the minor unit, once (the amounts are never negative).
    return {cur: MrrMonth((value + 6) // 12, counts[cur]) for cur, value in twelfths.items()}


def mrr_by_month(months: list[Month], *, as_of: datetime | None = None) -> dict[str, list[int]]:
    """Currency -> MRR in minor units per month (aligned with `months`); a currency
    appears when any month has a paid period in it."""
    detail = mrr_detail(months, as_of=as_of)
    return {cur: [m.amount_minor for m in values] for cur, values in detail.items()}


def mrr_detail(months: list[Month], *, as_of: datetime | None = None) -> dict[str, list[MrrMonth]]:
    as_of = as_of or timezone.now()
    per_month = [_mrr_month(month, as_of) for month in months]
    currencies = sorted({cur for row in per_month for cur in row})
    empty = MrrMonth(0, 0)
    return {cur: [row.get(cur, empty) for row in per_month] for cur in currencies}


# --- transitions by month ---------------------------------------------------------------


def _in_range(months: list[Month]) -> Q:
    return Q(at__gte=months[0].start, at__lt=months[-1].end)


def _by_month(queryset, months: list[Month], **counts) -> list[dict[str, int]]:
    """Count transitions per month of `at`: {name: Count(...)} per month, zeros filled."""
    rows = (
        queryset.filter(_in_range(months))
        .annotate(month=TruncMonth("at", tzinfo=timezone.get_current_timezone()))
        .values("month")
        .annotate(**counts)
        .order_by("month")
    )
    found = {f"{row['month']:%Y-%m}": row for row in rows}
    return [{name: (found.get(m.label) or {}).get(name, 0) or 0 for name in counts} for m in months]


@dataclass(frozen=True)
class FlowMonth:
    new: int
    churned: int

    @property
    def net(self) -> int:
        return self.new - self.churned


def subscriptions_flow(months: list[Month]) -> list[FlowMonth]:
    moves = SubscriptionTransition.objects.exclude(from_status=F("to_status"))
    new = _by_month(
        moves.filter(
            Q(to_status="trialing") | Q(to_status="active", from_status__in=("", "incomplete"))
        ),
        months,
        n=Count("subscription", distinct=True),
    )
    churned = _by_month(
        moves.filter(to_status__in=ENDED, from_status__in=STARTED),
        months,
        n=Count("subscription", distinct=True),
    )
    return [FlowMonth(a["n"], b["n"]) for a, b in zip(new, churned, strict=True)]


@dataclass(frozen=True)
class DunningMonth:
    entered: int
    recovered: int
    lost: int
    still_open: int

    @property
    def rate(self) -> Decimal | None:
        return ratio(self.recovered, self.entered)


def dunning_recovery(months: list[Month]) -> list[DunningMonth]:
    """Past-due episodes by the month they started, with how each one ended."""
    labels = {m.label: i for i, m in enumerate(months)}
    tallies = [{"entered": 0, "recovered": 0, "lost": 0, "open": 0} for _ in months]
    dunned = SubscriptionTransition.objects.filter(
        _in_range(months), to_status=SubscriptionStatus.PAST_DUE
    ).values("subscription_id")
    moves = (
        SubscriptionTransition.objects.filter(subscription_id__in=dunned)
        .exclude(from_status=F("to_status"))
        .order_by("subscription_id", "at", "id")
        .values_list("subscription_id", "from_status", "to_status", "at")
    )
    tz = timezone.get_current_timezone()
    episode: int | None = None  # the tally of the open episode of the current subscription
    current = None
    for sub_id, from_status, to_status, at in moves.iterator(chunk_size=2000):
        if sub_id != current:
            if episode is not None:
                tallies[episode]["open"] += 1
            current, episode = sub_id, None
        if from_status == SubscriptionStatus.PAST_DUE and episode is not None:
            outcome = "recovered" if to_status == SubscriptionStatus.ACTIVE else "lost"
            tallies[episode][outcome] += 1
            episode = None
        if to_status == SubscriptionStatus.PAST_DUE:
            index = labels.get(f"{at.astimezone(tz):%Y-%m}")
            if index is not None:
                tallies[index]["entered"] += 1
                episode = index
    if episode is not None:
        tallies[episode]["open"] += 1
    return [DunningMonth(t["entered"], t["recovered"], t["lost"], t["open"]) for t in tallies]


@dataclass(frozen=True)
class TrialMonth:
    ended: int
    converted: int

    @property
    def rate(self) -> Decimal | None:
        return ratio(self.converted, self.ended)


def trial_conversion(months: list[Month]) -> list[TrialMonth]:
    rows = _by_month(
        SubscriptionTransition.objects.filter(from_status="trialing").exclude(to_status="trialing"),
        months,
        ended=Count("id"),
        converted=Count("id", filter=Q(to_status="active")),
    )
    return [TrialMonth(r["ended"], r["converted"]) for r in rows]


@dataclass(frozen=True)
class Totals:
    """A metric over the whole range (the KPI boxes)."""

    part: int
    whole: int

    @property
    def rate(self) -> Decimal | None:
        return ratio(self.part, self.whole)


def dunning_total(rows: list[DunningMonth]) -> Totals:
    return Totals(sum(r.recovered for r in rows), sum(r.entered for r in rows))


def trial_total(rows: list[TrialMonth]) -> Totals:
    return Totals(sum(r.converted for r in rows), sum(r.ended for r in rows))


# --- dunning now ------------------------------------------------------------------------


@dataclass(frozen=True)
class PastDue:
    subscription: Subscription
    first_failed_at: datetime | None
    next_attempt_at: datetime | None
    attempt_count: int
    amount_due_minor: int
    currency: str
    open_invoice_ids: list = field(default_factory=list)

    @property
    def grace_ends_at(self) -> datetime | None:
        since = self.subscription.past_due_since
        return since + timedelta(days=settings.BILLING_GRACE_DAYS) if since else None


def past_due() -> list[PastDue]:
    """Every past-due subscription with its open invoices' dunning state: the first
    failure, the next retry, the attempts so far and what is still owed. Soonest retry
    first (none scheduled last)."""
    open_ = Q(invoices__status=InvoiceStatus.OPEN)
    subs = (
        Subscription.objects.filter(status=SubscriptionStatus.PAST_DUE)
        .select_related("customer", "plan", "customer__test_clock")
        .annotate(
            first_failed=Min("invoices__first_failed_at", filter=open_),
            next_attempt=Min("invoices__next_attempt_at", filter=open_),
            attempts=Coalesce(Sum("invoices__attempt_count", filter=open_), 0),
            due=Coalesce(
                Sum(F("invoices__total_minor") - F("invoices__amount_paid_minor"), filter=open_),
                0,
            ),
        )
        .order_by(F("next_attempt").asc(nulls_last=True), "past_due_since", "pk")
    )
    rows = list(subs)
    open_ids: dict = defaultdict(list)
    for sub_id, invoice_id in (
        Invoice.objects.filter(subscription__in=[s.pk for s in rows], status=InvoiceStatus.OPEN)
        .order_by("created_at")
        .values_list("subscription_id", "pk")
    ):
        open_ids[sub_id].append(invoice_id)
    return [
        PastDue(
            subscription=s,
            first_failed_at=s.first_failed,
            next_attempt_at=s.next_attempt,
            attempt_count=s.attempts,
            amount_due_minor=s.due,
            currency=s.plan.currency,
            open_invoice_ids=open_ids[s.pk],
        )
        for s in rows
    ]


def amount_at_risk() -> dict[str, int]:
    """Currency -> what the open invoices of past-due subscriptions still owe."""
    rows = (
        Invoice.objects.filter(
            status=InvoiceStatus.OPEN, subscription__status=SubscriptionStatus.PAST_DUE
        )
        .values("currency")
        .annotate(due=Sum(F("total_minor") - F("amount_paid_minor")))
        .order_by("currency")
    )
    return {row["currency"]: row["due"] for row in rows}
