"""The subscription lifecycle as a hypothesis state machine (issue 13, "Tests").

Random interleavings of subscribe (with and without a trial, with a coupon that lasts
once, N invoices or forever), renewals and trial ends (the customer's test clock advanced
to the next due moment, or by any number of days), declines (the card switched to a
declined one before a renewal), dunning retries, paying (a good card: customer_upsert
retries at once), upgrades and downgrades between three monthly plans and a yearly one,
cancel now or at the period end, resume and credit grants run against a real PostgreSQL
through the services (billing.services, billing.testclocks.clock_advance), not HTTP.

A plain-Python model written here from API.md predicts every subscription's status,
plan, pending plan, period, trial end and discounts left, every invoice (reason, status,
period, lines, subtotal, discount, credit, total, amount paid, attempts, next retry) and
the credit balance. After every step the database is compared with the model and checked
against invariants that need no model:

- every invoice's lines sum to its total; total = subtotal - discount - credit >= 0;
  the discount is at most the subtotal and the credit at most what is left;
- invoice numbers are gapless and increasing in creation order;
- at most one live subscription per customer;
- every status change is a SubscriptionTransition row, the rows chain (each one starts
  where the previous ended, the last ends at the current status) and each change is
  legal per billing.engine.lifecycle.LEGAL;
- a paid invoice's amount_paid is its total (anything else has paid nothing);
- a subscription's period invoices are contiguous (each starts where the last ended);
- the credit balance is the sum of the credit ledger.

The services open durable transactions and call the gateway outside any transaction, so
this is a `django_db(transaction=True)` test; each example gets its own test clock and
billing customer (nothing from an earlier example is due on its clock) and its coupons
have codes no earlier example used. Budget: BILLING_STATEFUL_EXAMPLES (default 25)
examples of up to BILLING_STATEFUL_STEPS (default 20) steps, derandomized.

A change to a plan of another interval waits for the period end (a new anchor); a
declined upgrade leaves everything as it was, a scheduled downgrade included.
"""

from __future__ import annotations

import calendar
import itertools
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from django.core.cache import cache
from django.db.models import Count, Max, Min, Sum
from django.test import override_settings
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import services, testclocks
from billing.engine.lifecycle import LEGAL
from billing.models import (
    LIVE_STATUSES,
    BillingCustomer,
    CreditEntry,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    Subscription,
    SubscriptionTransition,
)
from billing.tests import support as t
from core.errors import DomainError
from coupons import selectors as coupon_selectors
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("BILLING_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("BILLING_STATEFUL_STEPS", "20"))

RETRY_DAYS = [1, 3, 5, 7]
GRACE_DAYS = 3


@dataclass(frozen=True)
class PlanSpec:
    amount: int
    trial_days: int
    interval: str = "month"

    @property
    def months(self) -> int:
        return 1 if self.interval == "month" else 12

    def cheaper_than(self, other: PlanSpec) -> bool:
        """By the price per month (a change to a cheaper plan waits for the period end)."""
        return self.amount * other.months <= other.amount * self.months


# Odd (prime) amounts so proration and percentages round. The yearly plan is the cheapest
# per month: moving to it is a downgrade at the period end (a new anchor there).
PLANS = {
    "sm-basic": PlanSpec(997, 0),
    "sm-pro": PlanSpec(2903, 14),
    "sm-team": PlanSpec(4999, 7),
    "sm-year": PlanSpec(9967, 0, "year"),
}
GOOD_CARDS = ("pm_card_visa", "pm_card_mastercard")
BAD_CARDS = ("pm_card_chargeDeclined", "pm_card_chargeDeclinedInsufficientFunds")
CARDS = (*GOOD_CARDS, *BAD_CARDS, "")
# Clock starts around month ends and leap days, so anchors land on them.
STARTS = [
    datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
    datetime(2028, 1, 31, 0, 0, tzinfo=UTC),
    datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(2028, 2, 29, 8, 30, tzinfo=UTC),
    datetime(2026, 3, 30, 6, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
]

CREATE, CYCLE, UPDATE = "subscription_create", "subscription_cycle", "subscription_update"

_examples = itertools.count()


# --- the model ---------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def bounds(anchor: datetime, plan: str, index: int) -> tuple[datetime, datetime]:
    months = PLANS[plan].months
    return add_months(anchor, index * months), add_months(anchor, (index + 1) * months)


def half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


@dataclass
class MInvoice:
    sub: int  # index into Model.subs
    reason: str
    plan: str
    period_start: datetime
    period_end: datetime
    lines: list[tuple[str, int]]
    subtotal: int
    discount: int
    credit: int
    status: str = "open"
    attempts: int = 0
    first_failed_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def total(self) -> int:
        return self.subtotal - self.discount - self.credit

    @property
    def paid(self) -> int:
        return self.total if self.status == "paid" else 0


@dataclass
class MSub:
    plan: str
    status: str
    anchor: datetime
    start: datetime
    end: datetime
    trial_end: datetime | None
    coupon_bp: int | None  # None: no coupon
    discount_remaining: int | None  # None with a coupon: forever
    index: int = 0
    cancel_at_end: bool = False
    pending: str | None = None
    statuses: list[str] = field(default_factory=list)
    pk: uuid.UUID | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


class Declined(Exception):
    """The model's prediction of a 402 payment_declined."""


class Model:
    """What API.md says billing does, for one customer on one clock."""

    def __init__(self, now: datetime, card: str):
        self.now = now
        self.card = card
        self.balance = 0
        self.subs: list[MSub] = []
        self.invoices: list[MInvoice] = []

    # helpers

    def live(self) -> MSub | None:
        return next((s for s in self.subs if s.live), None)

    def set_status(self, sub: MSub, status: str) -> None:
        sub.status = status
        sub.statuses.append(status)

    def invoice(self, sub: MSub, plan: str, reason, start, end, charges) -> MInvoice:
        subtotal = sum(amount for _, amount in charges)
        discount = 0
        if (
            sub.coupon_bp is not None
            and subtotal > 0
            and reason != UPDATE
            and (sub.discount_remaining is None or sub.discount_remaining > 0)
        ):
            discount = min(half_up(Fraction(subtotal * sub.coupon_bp, 10_000)), subtotal)
            if sub.discount_remaining is not None:
                sub.discount_remaining -= 1
        credit = max(0, min(self.balance, subtotal - discount))
        self.balance -= credit
        lines = list(charges)
        if discount:
            lines.append(("discount", -discount))
        if credit:
            lines.append(("credit", -credit))
        inv = MInvoice(
            self.subs.index(sub), reason, plan, start, end, lines, subtotal, discount, credit
        )
        self.invoices.append(inv)
        if inv.total == 0:
            inv.status = "paid"
        return inv

    def void(self, inv: MInvoice) -> None:
        inv.status = "void"
        inv.next_attempt_at = None
        self.balance += inv.credit

    def charge(self, inv: MInvoice) -> bool:
        inv.attempts += 1
        inv.next_attempt_at = None
        if self.card in GOOD_CARDS:
            inv.status = "paid"
            return True
        return False

    def dunning(self, inv: MInvoice, sub: MSub) -> None:
        """After a declined renewal charge (retries counted from the first failure)."""
        if inv.attempts <= len(RETRY_DAYS):
            inv.first_failed_at = inv.first_failed_at or self.now
            inv.next_attempt_at = inv.first_failed_at + timedelta(days=RETRY_DAYS[inv.attempts - 1])
            if sub.status == "active":
                self.set_status(sub, "past_due")
            return
        inv.status = "uncollectible"
        inv.next_attempt_at = None
        self.balance += inv.credit
        self.set_status(sub, "cancelled")

    def pay_renewal(self, inv: MInvoice, sub: MSub) -> None:
        if self.charge(inv):
            if sub.status == "past_due":
                self.set_status(sub, "active")
        else:
            self.dunning(inv, sub)

    # operations

    def subscribe(self, plan: str, trial: bool | None, coupon: tuple[int, int | None] | None):
        spec = PLANS[plan]
        with_trial = spec.trial_days > 0 if trial is None else (trial and spec.trial_days > 0)
        bp, invoices = coupon if coupon else (None, None)
        if with_trial:
            anchor = self.now + timedelta(days=spec.trial_days)
            sub = MSub(plan, "trialing", anchor, self.now, anchor, anchor, bp, invoices)
            sub.statuses.append("trialing")
            self.subs.append(sub)
            self.invoice(sub, plan, CREATE, self.now, anchor, [("subscription", 0)])
            return sub
        anchor = self.now
        sub = MSub(plan, "incomplete", anchor, *bounds(anchor, plan, 0), None, bp, invoices)
        sub.statuses.append("incomplete")
        self.subs.append(sub)
        inv = self.invoice(sub, plan, CREATE, sub.start, sub.end, [("subscription", spec.amount)])
        if inv.status == "paid" or self.charge(inv):
            self.set_status(sub, "active")
            return sub
        self.void(inv)
        self.set_status(sub, "expired")
        raise Declined

    def change(self, sub: MSub, plan: str) -> str:
        """-> "subscription_not_active" | "same_plan" | "trial" | "scheduled" | "upgraded";
        raises Declined."""
        if sub.status not in ("active", "trialing"):
            return "subscription_not_active"
        if plan == sub.plan:
            return "same_plan"
        if sub.status == "trialing":
            sub.plan, sub.pending = plan, None
            return "trial"
        old, new = PLANS[sub.plan].amount, PLANS[plan].amount
        if PLANS[plan].cheaper_than(PLANS[sub.plan]) or (
            PLANS[plan].interval != PLANS[sub.plan].interval
        ):
            # a downgrade, or another interval (a new anchor): at the period end
            sub.pending = plan
            return "scheduled"
        assert sub.start <= self.now < sub.end, "an active subscription's period holds now"
        whole = int((sub.end - sub.start).total_seconds())
        left = int((sub.end - self.now).total_seconds())
        charges = [
            ("proration", -half_up(Fraction(old * left, whole))),
            ("proration", half_up(Fraction(new * left, whole))),
        ]
        inv = self.invoice(sub, plan, UPDATE, self.now, sub.end, charges)
        if inv.status == "paid" or self.charge(inv):
            sub.plan, sub.pending = plan, None
            return "upgraded"
        self.void(inv)
        raise Declined

    def cancel(self, sub: MSub, at_period_end: bool) -> None:
        if not sub.live:
            return
        if at_period_end and sub.status in ("active", "trialing"):
            sub.cancel_at_end = True
            return
        for inv in self.invoices:
            if self.subs[inv.sub] is sub and inv.status == "open":
                self.void(inv)
        self.set_status(sub, "cancelled")

    def resume(self, sub: MSub) -> bool:
        if not sub.live:
            return False
        sub.cancel_at_end = False
        return True

    def set_card(self, card: str) -> None:
        changed = card != self.card
        self.card = card
        if not (changed and card):
            return
        for inv in self.invoices:
            sub = self.subs[inv.sub]
            if inv.status == "open" and sub.status == "past_due":
                self.pay_renewal(inv, sub)

    # time

    def due(self, until: datetime) -> datetime | None:
        moments = []
        for sub in self.subs:
            if sub.status == "trialing":
                moments.append(sub.trial_end)
            elif sub.status == "active":
                moments.append(sub.end)
        moments += [
            i.next_attempt_at for i in self.invoices if i.status == "open" and i.next_attempt_at
        ]
        moments = [m for m in moments if m <= until]
        return min(moments) if moments else None

    def advance(self, target: datetime) -> None:
        """The clock steps from one due moment to the next (a moment already past runs
        at the clock's time), running what is due there, until the target."""
        if target <= self.now:
            return
        while True:
            moment = max(self.due(target) or target, self.now)
            self.now = moment
            self.run_due(moment)
            if moment >= target and self.due(target) is None:
                self.now = target
                return

    def run_due(self, moment: datetime) -> None:
        for sub in self.subs:
            if sub.status == "trialing" and sub.trial_end <= moment:
                self.trial_end(sub)
            elif sub.status == "active" and sub.end <= moment:
                self.period_end(sub)
        for inv in self.invoices:
            if inv.status == "open" and inv.next_attempt_at and inv.next_attempt_at <= moment:
                self.pay_renewal(inv, self.subs[inv.sub])

    def trial_end(self, sub: MSub) -> None:
        if sub.cancel_at_end:
            self.set_status(sub, "cancelled")
            return
        sub.index, (sub.start, sub.end) = 0, bounds(sub.anchor, sub.plan, 0)
        amount = PLANS[sub.plan].amount
        inv = self.invoice(sub, sub.plan, CYCLE, sub.start, sub.end, [("subscription", amount)])
        if inv.status == "paid" or self.charge(inv):
            self.set_status(sub, "active")
        else:
            self.void(inv)
            self.set_status(sub, "expired")

    def period_end(self, sub: MSub) -> None:
        if sub.cancel_at_end:
            self.set_status(sub, "cancelled")
            return
        at, index = sub.end, sub.index + 1
        if sub.pending is not None:
            if PLANS[sub.pending].interval != PLANS[sub.plan].interval:
                sub.anchor, index = at, 0  # a new interval counts its periods from here
            sub.plan, sub.pending = sub.pending, None
        sub.index, (sub.start, sub.end) = index, bounds(sub.anchor, sub.plan, index)
        assert sub.start == at, "periods are contiguous"
        amount = PLANS[sub.plan].amount
        inv = self.invoice(sub, sub.plan, CYCLE, sub.start, sub.end, [("subscription", amount)])
        if inv.status != "paid":
            self.pay_renewal(inv, sub)


# --- the machine -------------------------------------------------------------------------

coupons = st.none() | st.tuples(
    st.sampled_from([2000, 3333, 10_000]),
    st.sampled_from(
        [("once", None), ("repeating", 1), ("repeating", 2), ("repeating", 3), ("forever", None)]
    ),
)


class Lifecycle(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.ready = False

    @initialize(
        start=st.sampled_from(STARTS),
        card=st.sampled_from(GOOD_CARDS),
        plan=st.sampled_from(list(PLANS)),
        trial=st.sampled_from([None, True, False]),
        coupon=coupons,
    )
    def fresh_customer(self, start, card, plan, trial, coupon):
        """A new customer on a new clock, subscribing at once (so that every example
        spends its steps on a subscription)."""
        cache.clear()
        coupon_selectors._local.clear()
        self.n = next(_examples)
        self.customer_id = f"sm-{self.n}"
        self.clock = testclocks.clock_create(frozen_time=start, name=self.customer_id)
        self.customer = t.customer(self.customer_id, card=card, test_clock=self.clock)
        self.model = Model(start, card)
        self.first_number = (
            InvoiceCounter.objects.filter(name="invoice")
            .values_list("last_number", flat=True)
            .first()
            or 0
        ) + 1
        self.coupons = itertools.count()
        self.credits = itertools.count()
        self.ready = True
        self.subscribe_now(plan, trial, coupon)

    # --- subscribe ---------------------------------------------------------------------

    def live_status(self) -> str | None:
        live = self.model.live() if self.ready else None
        return live.status if live else None

    @precondition(lambda self: self.ready and self.live_status() is None)
    @rule(
        plan=st.sampled_from(list(PLANS)),
        trial=st.sampled_from([None, True, False]),
        coupon=coupons,
    )
    def subscribe(self, plan, trial, coupon):
        """Again, after the last one ended (possibly with a declined card)."""
        self.subscribe_now(plan, trial, coupon)

    def subscribe_now(self, plan, trial, coupon):
        code, terms = None, None
        if coupon is not None:
            bp, (duration, n) = coupon
            code = f"SM{self.n}C{next(self.coupons)}"
            CouponFactory(code=code, percent_bp=bp, duration=duration, duration_invoices=n)
            terms = (bp, None if duration == "forever" else n or 1)
        known = {s.pk for s in self.model.subs}
        try:
            self.model.subscribe(plan, trial, terms)
            declined = False
        except Declined:
            declined = True
        sub = self.model.subs[-1]
        refusal = None
        try:
            services.subscription_create(
                customer_id=self.customer_id, plan_code=plan, coupon_code=code, trial=trial
            )
        except DomainError as exc:
            refusal = exc.code
        assert refusal == ("payment_declined" if declined else None), refusal
        (row,) = Subscription.objects.filter(customer__customer_id=self.customer_id).exclude(
            pk__in=known
        )
        sub.pk = row.pk
        event(f"subscribe: {sub.status}{' +coupon' if coupon else ''}")

    @precondition(lambda self: self.live_status() is not None)
    @rule(plan=st.sampled_from(list(PLANS)))
    def subscribe_again(self, plan):
        """A second live subscription is refused and creates nothing."""
        with pytest.raises(DomainError) as refused:
            services.subscription_create(customer_id=self.customer_id, plan_code=plan)
        assert refused.value.code == "subscription_exists"

    # --- time --------------------------------------------------------------------------

    def advance(self, target: datetime) -> None:
        self.model.advance(target)
        testclocks.clock_advance(clock_id=self.clock.pk, frozen_time=target)

    def next_moment(self) -> datetime | None:
        return self.model.due(datetime.max.replace(tzinfo=UTC))

    @precondition(lambda self: self.ready and self.next_moment() is not None)
    @rule(extra=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(hours=5)]))
    def renew(self, extra):
        """To the next renewal, trial end or retry (plus a little)."""
        self.advance(self.next_moment() + extra)

    @precondition(lambda self: self.live_status() == "active")
    @rule(card=st.sampled_from(BAD_CARDS))
    def fail_renewal(self, card):
        """The card is declined from now on, then the period ends."""
        self.set_card(card)
        self.advance(self.model.live().end)

    @precondition(lambda self: self.live_status() == "past_due")
    @rule(extra=st.sampled_from([timedelta(0), timedelta(days=2), timedelta(days=8)]))
    def retry(self, extra):
        """Past the next retry day (or, with 8 days, past all of them)."""
        inv = next(i for i in self.model.invoices if i.status == "open" and i.next_attempt_at)
        self.advance(inv.next_attempt_at + extra)

    @precondition(lambda self: self.ready)
    @rule(days=st.integers(0, 45), seconds=st.integers(0, 86_399))
    def advance_by(self, days, seconds):
        self.advance(self.model.now + timedelta(days=days, seconds=seconds))

    # --- the card and credit -----------------------------------------------------------

    def set_card(self, card: str) -> None:
        self.model.set_card(card)
        services.customer_upsert(customer_id=self.customer_id, fields={"payment_method": card})

    @precondition(lambda self: self.ready)
    @rule(card=st.sampled_from(CARDS))
    def change_card(self, card):
        self.set_card(card)

    @precondition(lambda self: self.live_status() == "past_due")
    @rule(card=st.sampled_from(GOOD_CARDS))
    def pay(self, card):
        """A good card while past due: the open invoice is retried at once."""
        if card == self.model.card:  # not a change: nothing retried
            card = next(c for c in GOOD_CARDS if c != card)
        self.set_card(card)
        assert self.model.live() is None or self.model.live().status == "active"

    @precondition(lambda self: self.ready)
    @rule(amount=st.sampled_from([1, 500, 2903, 10_000]))
    def grant_credit(self, amount):
        self.model.balance += amount
        services.credit_grant(
            customer_id=self.customer_id,
            amount_minor=amount,
            currency="USD",
            kind=CreditEntry.Kind.ADJUSTMENT,
            reference=f"sm-{self.n}-{next(self.credits)}",
        )

    # --- change plan -------------------------------------------------------------------

    def plans_from_here(self, *, up: bool) -> list[str]:
        """Pricier plans of the same interval (up), or cheaper plans of any interval."""
        here = PLANS[self.model.live().plan]
        return [
            code
            for code, spec in PLANS.items()
            if spec is not here
            and (
                (not spec.cheaper_than(here) and spec.interval == here.interval)
                if up
                else spec.cheaper_than(here)
            )
        ]

    @precondition(
        lambda self: self.live_status() in ("active", "trialing") and self.plans_from_here(up=True)
    )
    @rule(data=st.data())
    def upgrade(self, data):
        self.change_plan(data.draw(st.sampled_from(self.plans_from_here(up=True))))

    @precondition(
        lambda self: self.live_status() in ("active", "trialing") and self.plans_from_here(up=False)
    )
    @rule(data=st.data())
    def downgrade(self, data):
        self.change_plan(data.draw(st.sampled_from(self.plans_from_here(up=False))))

    @precondition(lambda self: self.live_status() is not None)
    @rule(plan=st.sampled_from(list(PLANS)))
    def change_plan(self, plan):
        """Any plan: the same one, or from past_due, is refused."""
        sub = self.model.live()
        try:
            expected = self.model.change(sub, plan)
        except Declined:
            expected = "payment_declined"
        try:
            services.subscription_change(sub_id=sub.pk, plan_code=plan)
            got = None
        except DomainError as exc:
            got = exc.code
        if expected in ("subscription_not_active", "same_plan", "payment_declined"):
            assert got == expected, (expected, got)
        else:
            assert got is None, (expected, got)
        event(f"change: {expected}")

    # --- cancel / resume ---------------------------------------------------------------

    @precondition(lambda self: self.live_status() is not None)
    @rule(at_period_end=st.booleans(), again=st.booleans())
    def cancel(self, at_period_end, again):
        """Cancel now or at the period end (a past-due subscription: now), maybe twice
        (idempotent)."""
        sub = self.model.live()
        self.model.cancel(sub, at_period_end)
        services.subscription_cancel(sub_id=sub.pk, at_period_end=at_period_end)
        if again:
            self.model.cancel(sub, at_period_end)
            services.subscription_cancel(sub_id=sub.pk, at_period_end=at_period_end)

    @precondition(lambda self: self.ready and self.model.subs)
    @rule(data=st.data())
    def resume(self, data):
        """Undo a pending cancel (a live subscription); an ended one cannot resume."""
        sub = self.model.live() or data.draw(st.sampled_from(self.model.subs))
        resumable = self.model.resume(sub)
        refusal = None
        try:
            services.subscription_resume(sub_id=sub.pk)
        except DomainError as exc:
            refusal = exc.code
        assert refusal == (None if resumable else "subscription_not_resumable"), refusal

    # --- after every step: the database against the model and the invariants ---------

    @invariant()
    def database_is_consistent_and_matches_the_model(self):
        """One read of this customer's rows (a few queries: the box is shared), then every
        check on it."""
        if not self.ready:
            return
        db = self.load()
        self.check_invoice_amounts(db)
        self.check_invoice_numbers(db)
        self.check_one_live_subscription()
        self.check_transitions(db)
        self.check_periods(db)
        self.check_invoices_against_the_model(db)
        self.check_subscriptions_against_the_model(db)
        self.check_credit(db)

    def load(self) -> dict:
        mine = {"customer__customer_id": self.customer_id}
        invoices = list(
            Invoice.objects.filter(**mine)
            .order_by("number")
            .values(
                "pk",
                "number",
                "subscription_id",
                "billing_reason",
                "plan__code",
                "status",
                "period_start",
                "period_end",
                "subtotal_minor",
                "discount_minor",
                "credit_applied_minor",
                "total_minor",
                "amount_paid_minor",
                "attempt_count",
                "next_attempt_at",
            )
        )
        lines: dict = {}
        for invoice_id, kind, amount in (
            InvoiceLine.objects.filter(**{f"invoice__{k}": v for k, v in mine.items()})
            .order_by("invoice", "position")
            .values_list("invoice", "kind", "amount_minor")
        ):
            lines.setdefault(invoice_id, []).append((kind, amount))
        subs = {
            x["pk"]: x
            for x in Subscription.objects.filter(**mine).values(
                "pk",
                "status",
                "plan__code",
                "pending_plan__code",
                "cancel_at_period_end",
                "anchor",
                "period_index",
                "current_period_start",
                "current_period_end",
                "trial_end",
                "discount_remaining",
            )
        }
        transitions: dict = {}
        for sub_id, from_status, to_status in (
            SubscriptionTransition.objects.filter(subscription_id__in=list(subs))
            .order_by("id")
            .values_list("subscription_id", "from_status", "to_status")
        ):
            transitions.setdefault(sub_id, []).append((from_status, to_status))
        customer = (
            BillingCustomer.objects.filter(customer_id=self.customer_id)
            .annotate(ledger=Sum("credits__amount_minor"))
            .values("credit_balance_minor", "ledger")
            .get()
        )
        numbers = Invoice.objects.exclude(number=None).aggregate(
            n=Count("pk"), lo=Min("number"), hi=Max("number")
        )
        counter = (
            InvoiceCounter.objects.filter(name="invoice")
            .values_list("last_number", flat=True)
            .first()
        )
        return {
            "invoices": invoices,
            "lines": lines,
            "subs": subs,
            "transitions": transitions,
            "customer": customer,
            "numbers": numbers,
            "counter": counter,
        }

    # --- invariants that need no model ---

    def check_invoice_amounts(self, db):
        """Lines sum to the total; total = subtotal - discount - credit >= 0; the discount
        at most the subtotal, the credit at most what is left; paid means all of it."""
        for x in db["invoices"]:
            name = x["number"]
            total = x["total_minor"]
            assert sum(a for _, a in db["lines"].get(x["pk"], [])) == total, f"{name}: lines"
            assert total == x["subtotal_minor"] - x["discount_minor"] - x["credit_applied_minor"]
            assert total >= 0, name
            assert 0 <= x["discount_minor"] <= x["subtotal_minor"], name
            assert 0 <= x["credit_applied_minor"] <= x["subtotal_minor"] - x["discount_minor"]
            if x["status"] == "paid":
                assert x["amount_paid_minor"] == total, f"{name}: paid {x['amount_paid_minor']}"
            else:
                assert x["amount_paid_minor"] == 0, f"{name}: {x['status']} but paid"

    def check_invoice_numbers(self, db):
        """Gapless over the whole table, the counter at the last one, and this customer's
        consecutive in creation order (the model's order)."""
        numbers = db["numbers"]
        if numbers["n"]:
            lo, hi = (int(numbers[k].rsplit("-", 1)[1]) for k in ("lo", "hi"))
            assert hi - lo + 1 == numbers["n"], f"a gap in the numbers {lo}..{hi}"
            assert hi == db["counter"], "the counter is ahead of the invoices"
        mine = [x["number"] for x in db["invoices"]]
        first = self.first_number
        assert mine == [f"INV-{n:06d}" for n in range(first, first + len(mine))]

    def check_one_live_subscription(self):
        crowded = (
            Subscription.objects.filter(status__in=LIVE_STATUSES)
            .values("customer")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        assert not crowded.exists(), list(crowded)

    def check_transitions(self, db):
        """Each status change a row; the rows chain; every change legal."""
        for pk, sub in db["subs"].items():
            rows = db["transitions"].get(pk, [])
            assert rows, "no creation row"
            assert rows[0][0] == "", "the first row does not create"
            previous = ""
            for from_status, to_status in rows:
                assert from_status == previous, f"{from_status}->{to_status} after {previous}"
                if from_status != to_status:
                    assert to_status in LEGAL[from_status], f"illegal {from_status}->{to_status}"
                previous = to_status
            assert previous == sub["status"], f"last transition {previous} != {sub['status']}"

    def check_periods(self, db):
        """A subscription's period invoices (the trial's, then each period's) are
        contiguous; a declined subscribe's void invoice was never a period."""
        spans: dict = {}
        for x in db["invoices"]:
            if x["billing_reason"] == UPDATE:
                continue
            if x["billing_reason"] == CREATE and x["status"] == "void":
                continue
            spans.setdefault(x["subscription_id"], []).append((x["period_start"], x["period_end"]))
        for periods in spans.values():
            assert all(start < end for start, end in periods)
            for (_, end), (start, _) in itertools.pairwise(periods):
                assert start == end, f"a gap or overlap between periods: {end} -> {start}"

    # --- against the model ---

    def check_invoices_against_the_model(self, db):
        pk_of = {i: s.pk for i, s in enumerate(self.model.subs)}
        got = [
            {
                "sub": x["subscription_id"],
                "reason": x["billing_reason"],
                "plan": x["plan__code"],
                "status": x["status"],
                "period": (x["period_start"], x["period_end"]),
                "lines": db["lines"].get(x["pk"], []),
                "amounts": (
                    x["subtotal_minor"],
                    x["discount_minor"],
                    x["credit_applied_minor"],
                    x["total_minor"],
                ),
                "paid": x["amount_paid_minor"],
                "attempts": x["attempt_count"],
                "next_attempt_at": x["next_attempt_at"],
            }
            for x in db["invoices"]
        ]
        want = [
            {
                "sub": pk_of[m.sub],
                "reason": m.reason,
                "plan": m.plan,
                "status": m.status,
                "period": (m.period_start, m.period_end),
                "lines": m.lines,
                "amounts": (m.subtotal, m.discount, m.credit, m.total),
                "paid": m.paid,
                "attempts": m.attempts,
                "next_attempt_at": m.next_attempt_at,
            }
            for m in self.model.invoices
        ]
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            assert g == w, f"invoice {i + 1}: db {g} != model {w}"
        assert len(got) == len(want), f"{len(got)} invoices in the db, {len(want)} in the model"

    def check_subscriptions_against_the_model(self, db):
        assert set(db["subs"]) == {s.pk for s in self.model.subs}
        for m in self.model.subs:
            x = db["subs"][m.pk]
            got = (
                x["status"],
                x["plan__code"],
                x["pending_plan__code"],
                x["cancel_at_period_end"],
                x["anchor"],
                x["period_index"],
                (x["current_period_start"], x["current_period_end"]),
                x["trial_end"],
                x["discount_remaining"],
            )
            want = (
                m.status,
                m.plan,
                m.pending,
                m.cancel_at_end,
                m.anchor,
                m.index,
                (m.start, m.end),
                m.trial_end,
                m.discount_remaining,
            )
            assert got == want, f"subscription: db {got} != model {want}"
            changes = [to for fr, to in db["transitions"][m.pk] if fr != to]
            assert changes == m.statuses, f"transitions {changes} != model {m.statuses}"

    def check_credit(self, db):
        customer = db["customer"]
        ledger = customer["ledger"] or 0
        assert customer["credit_balance_minor"] == ledger, "the balance is not the ledger's sum"
        assert ledger == self.model.balance, f"credit {ledger} != model {self.model.balance}"

    def teardown(self):
        if self.ready:
            live = self.model.live()
            event(f"final: {live.status if live else 'no live subscription'}")
            event(f"final: {min(len(self.model.invoices), 6)}+ invoices")
        self.ready = False


@override_settings(
    BILLING_DUNNING_RETRY_DAYS=RETRY_DAYS,
    BILLING_GRACE_DAYS=GRACE_DAYS,
    BILLING_TEST_CLOCKS_ENABLED=True,
    BILLING_CLOCK_SYNC_SECONDS=600,
    BILLING_TEST_GATEWAY_FAILURE="none",
    BILLING_TEST_GATEWAY_LATENCY_MS=0,
    BILLING_INVOICE_PREFIX="INV",
)
def test_subscription_lifecycle_state_machine():
    for code, spec in PLANS.items():
        t.plan(code, spec.amount, interval=spec.interval, trial_days=spec.trial_days)
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
