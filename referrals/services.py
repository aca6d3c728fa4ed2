"""Referral writes: codes, attribution at signup with the fraud checks, conversion on the
invitee's first paid invoice, the reward after the hold, rejection and clawback on a
refund. Every state change locks the referral row and records its transition once
(unique per referral and target state), in the same transaction as its effect (the
billing credit of a reward, the clawback).

Lock order: the referral row, then billing's customer row (inside billing's services).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from billing import selectors as billing
from billing import services as billing_services
from core import crockford
from core.errors import NotFound, Unprocessable
from coupons import services as coupon_services
from referrals.models import (
    Program,
    Referral,
    ReferralCode,
    ReferralStatus,
    ReferralTransition,
    Reward,
)

logger = logging.getLogger(__name__)

WELCOME_TEMPLATE = "REFERRAL-WELCOME"
SELF_KINDS = ("email", "device", "payment")  # an identity shared with the referrer
CODE_LENGTH = 8


def program() -> Program:
    """The program's settings row, created from REFERRAL_HOLD_DAYS and
    REFERRAL_REFERRER_CREDIT on first use."""
    found = Program.objects.filter(pk=1).first()
    if found is not None:
        return found
    credit = int(Decimal(settings.REFERRAL_REFERRER_CREDIT) * 100)
    return Program.objects.get_or_create(
        pk=1,
        defaults={"hold_days": settings.REFERRAL_HOLD_DAYS, "referrer_credit_minor": credit},
    )[0]


def _identity(customer_id: str, context: dict | None) -> dict[str, str]:
    """The keyed hashes of a customer's identities: what the context says, plus the
    billing customer's email and payment method."""
    facts = billing.customer_facts(customer_id)
    merged = dict(context or {})
    if facts.email and not merged.get("email"):
        merged["email"] = facts.email
    if facts.payment_method and not merged.get("payment_fingerprint"):
        merged["payment_fingerprint"] = facts.payment_method
    return coupon_services.identity_digests(merged)


# --- codes ------------------------------------------------------------------------------


def code_get_or_create(
    *, customer_id: str, context: dict | None = None
) -> tuple[ReferralCode, bool]:
    """The referrer's one code (created on first call). Later calls add identities
    given in `context` to what the self-referral check compares."""
    identity = _identity(customer_id, context)
    with transaction.atomic():
        existing = ReferralCode.objects.select_for_update().filter(customer_id=customer_id).first()
        if existing is not None:
            merged = {**identity, **existing.identity}
            if merged != existing.identity:
                ReferralCode.objects.filter(pk=existing.pk).update(identity=merged)
                existing.identity = merged
            return existing, False
    for _ in range(5):
        try:
            with transaction.atomic():
                return (
                    ReferralCode.objects.create(
                        code=crockford.random_symbols(CODE_LENGTH),
                        customer_id=customer_id,
                        identity=identity,
                    ),
                    True,
                )
        except IntegrityError:
            existing = ReferralCode.objects.filter(customer_id=customer_id).first()
            if existing is not None:  # a concurrent first call won
                return existing, False
            # else the random code collided: draw again
    raise RuntimeError("could not draw a unique referral code")


# --- attribution --------------------------------------------------------------------------


def _transition(referral: Referral, to_status: str, reason: str, at: datetime) -> None:
    ReferralTransition.objects.create(
        referral=referral,
        from_status=referral.status if referral.pk and referral.status != to_status else "",
        to_status=to_status,
        reason=reason,
        at=at,
    )


def attribute(*, code: str, customer_id: str, context: dict | None = None) -> tuple[Referral, bool]:
    """Attribute a new customer to a referrer's code: (the referral, created). The first
    referrer wins (invitee_id is unique): the same customer again, with any code, gets
    the first referral back."""
    earlier = Referral.objects.filter(invitee_id=customer_id).first()
    if earlier is not None:
        return earlier, False
    owner = ReferralCode.objects.filter(code=crockford.canonical(code) or code.strip()).first()
    if owner is None:
        owner = ReferralCode.objects.filter(code=code.strip().upper()).first()
    if owner is None:
        raise NotFound("referral_code_not_found", "No such referral code.")
    identity = _identity(customer_id, context)
    if owner.customer_id == customer_id or any(
        identity.get(kind) and identity.get(kind) == owner.identity.get(kind) for kind in SELF_KINDS
    ):
        raise Unprocessable("self_referral", "A customer cannot refer themself.")
    facts = billing.customer_facts(customer_id)
    if facts.has_paid:
        raise Unprocessable("not_new_customer", "This customer has already paid an invoice.")
    rules = program()
    held, why = _review(rules, owner.customer_id, identity, facts.now)
    try:
        with transaction.atomic():
            referral = Referral(
                code=owner,
                referrer_id=owner.customer_id,
                invitee_id=customer_id,
                status=ReferralStatus.SIGNED_UP,
                identity=identity,
                held_for_review=held,
                review_reason=why,
                test_clock_id=facts.test_clock_id or "",
                signed_up_at=facts.now,
            )
            referral.invitee_coupon = coupon_services.welcome_code_issue(
                template_code=WELCOME_TEMPLATE,
                percent_bp=rules.welcome_percent_bp,
                invoices=rules.welcome_invoices,
                customer_id=customer_id,
                now=facts.now,
            )
            referral.save(force_insert=True)
            _transition(referral, ReferralStatus.SIGNED_UP, "attributed", facts.now)
    except IntegrityError:  # a concurrent attribution of this customer won
        return Referral.objects.get(invitee_id=customer_id), False
    return referral, True


def _review(rules: Program, referrer_id: str, identity: dict, now: datetime) -> tuple[bool, str]:
    """Hold suspicious patterns for review instead of rewarding them automatically."""
    day, hour = now - timedelta(days=1), now - timedelta(hours=1)
    for kind, limit in (
        ("ip", rules.review_max_per_ip_day),
        ("device", rules.review_max_per_device_day),
    ):
        digest = identity.get(kind)
        if digest and (
            Referral.objects.filter(signed_up_at__gte=day, **{f"identity__{kind}": digest}).count()
            >= limit
        ):
            return True, f"many_per_{kind}"
    recent = Referral.objects.filter(referrer_id=referrer_id, signed_up_at__gte=hour).count()
    if recent >= rules.review_max_per_referrer_hour:
        return True, "referrer_burst"
    return False, ""


# --- conversion, reward, rejection, clawback -------------------------------------------------


def _locked(invitee_id: str) -> Referral | None:
    return Referral.objects.select_for_update().filter(invitee_id=invitee_id).first()


@transaction.atomic
def invoice_paid(*, customer_id: str, invoice_id: str, amount_minor: int, currency: str) -> bool:
    """The invitee's first paid invoice with something charged converts the referral
    (at least once delivery: a second call changes nothing)."""
    if amount_minor <= 0:
        return False
    referral = _locked(customer_id)
    if referral is None or referral.status != ReferralStatus.SIGNED_UP:
        return False
    now = billing.customer_facts(customer_id).now
    hold = program().hold_days
    Referral.objects.filter(pk=referral.pk).update(
        status=ReferralStatus.CONVERTED,
        converted_at=now,
        converted_invoice_id=invoice_id,
        currency=currency,
        reward_due_at=now + timedelta(days=hold),
    )
    _transition(referral, ReferralStatus.CONVERTED, f"invoice {invoice_id}"[:60], now)
    return True


@transaction.atomic
def invoice_refunded(*, customer_id: str, invoice_id: str) -> str:
    """A refund of the invitee: inside the hold it rejects the referral; after the reward
    it claws back what is unused of the credit. Returns what it did."""
    referral = _locked(customer_id)
    if referral is None:
        return "none"
    now = billing.customer_facts(customer_id).now
    if referral.status == ReferralStatus.CONVERTED:
        Referral.objects.filter(pk=referral.pk).update(
            status=ReferralStatus.REJECTED, reason="refunded"
        )
        _transition(referral, ReferralStatus.REJECTED, "refunded", now)
        return "rejected"
    if referral.status == ReferralStatus.REWARDED:
        reward = Reward.objects.select_for_update().get(referral=referral)
        if reward.clawed_back_at is not None:
            return "clawed_back"
        taken = billing_services.credit_clawback(
            customer_id=reward.customer_id,
            amount_minor=reward.amount_minor,
            currency=reward.currency,
            reference=f"referral-clawback:{referral.pk}",
            description=f"Referral of {referral.invitee_id} refunded",
        )
        Reward.objects.filter(pk=reward.pk).update(clawed_back_minor=taken, clawed_back_at=now)
        return "clawed_back"
    return "none"


def rewards_due(
    *, now: datetime | None = None, clock_id: str | None = None, batch: int = 200
) -> int:
    """Beat (wall-clock customers) and test clocks (theirs): reward each converted,
    unheld referral whose hold has passed. SKIP LOCKED batches; the credit and the
    transition commit together."""
    done = 0
    while True:
        count = _rewards_batch(now, clock_id, batch)
        done += count
        if count < batch:
            return done


def _rewards_batch(now: datetime | None, clock_id: str | None, batch: int) -> int:
    from django.utils import timezone

    with transaction.atomic():
        due = Referral.objects.select_for_update(skip_locked=True).filter(
            status=ReferralStatus.CONVERTED, held_for_review=False
        )
        due = due.filter(test_clock_id=clock_id or "")  # beat: wall-clock invitees only
        moment = now or timezone.now()
        rows = list(due.filter(reward_due_at__lte=moment).order_by("reward_due_at")[:batch])
        rules = program()
        for referral in rows:
            _reward(referral, rules)
    return len(rows)


def _reward(referral: Referral, rules: Program) -> None:
    at = referral.reward_due_at or referral.converted_at
    if at is None:
        return
    amount = rules.referrer_credit_minor
    currency = referral.currency or "USD"
    billing_services.credit_grant(
        customer_id=referral.referrer_id,
        amount_minor=amount,
        currency=currency,
        kind="referral_reward",
        reference=f"referral:{referral.pk}",
        description=f"Referral of {referral.invitee_id}",
    )
    Reward.objects.create(
        referral=referral,
        customer_id=referral.referrer_id,
        amount_minor=amount,
        currency=currency,
        granted_at=at,
    )
    Referral.objects.filter(pk=referral.pk).update(status=ReferralStatus.REWARDED)
    _transition(referral, ReferralStatus.REWARDED, "hold passed", at)


@transaction.atomic
def review_release(*, referral_id, approve: bool, by: str = "") -> Referral:
    """The admin's review of a held referral: approve (rewarded by the job when due) or
    reject."""
    referral = Referral.objects.select_for_update().get(pk=referral_id)
    if approve:
        Referral.objects.filter(pk=referral.pk).update(held_for_review=False)
    elif referral.status in (ReferralStatus.SIGNED_UP, ReferralStatus.CONVERTED):
        Referral.objects.filter(pk=referral.pk).update(
            status=ReferralStatus.REJECTED, reason="review_rejected", held_for_review=False
        )
        from django.utils import timezone

        _transition(referral, ReferralStatus.REJECTED, f"review_rejected {by}"[:60], timezone.now())
    referral.refresh_from_db()
    return referral


def next_due_on_clock(clock_id: str, moment: datetime) -> datetime | None:
    """billing.testclocks' DueSource: the next reward due after `moment` on this clock."""
    return (
        Referral.objects.filter(
            Q(status=ReferralStatus.CONVERTED, held_for_review=False, reward_due_at__gt=moment),
            test_clock_id=clock_id,
        )
        .order_by("reward_due_at")
        .values_list("reward_due_at", flat=True)
        .first()
    )


def run_on_clock(clock_id: str, moment: datetime) -> None:
    rewards_due(now=moment, clock_id=clock_id)
