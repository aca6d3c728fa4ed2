"""Referral reads: a customer's code, referrals and rewards; the program's numbers
(computed when read, never kept as counters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Sum

from billing import selectors as billing
from referrals.models import Referral, ReferralCode, Reward


def code_for(customer_id: str) -> ReferralCode | None:
    return ReferralCode.objects.filter(customer_id=customer_id).first()


def referrals_of(referrer_id: str) -> list[Referral]:
    return list(Referral.objects.filter(referrer_id=referrer_id).order_by("created_at"))


def rewards_earned_minor(customer_id: str) -> int:
    """Rewards given minus what was clawed back."""
    totals = Reward.objects.filter(customer_id=customer_id).aggregate(
        given=Sum("amount_minor"), back=Sum("clawed_back_minor")
    )
    return (totals["given"] or 0) - (totals["back"] or 0)


@dataclass(frozen=True)
class Stats:
    signups: int
    referred_signups: int
    organic_signups: int
    referred_share: float
    conversions: int
    conversion_rate: float
    rewards_issued: int
    k_factor: float | None


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Inclusive dates -> [start 00:00 UTC, the day after end 00:00 UTC)."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def stats(start: date, end: date) -> Stats:
    """docs/referrals.md defines each number. k_factor = referred signups in the range
    divided by the customers who existed when the range began."""
    lo, hi = bounds(start, end)
    signed_up = billing.signups_between(lo, hi)
    referred = Referral.objects.filter(invitee_id__in=signed_up).count()
    conversions = Referral.objects.filter(converted_at__gte=lo, converted_at__lt=hi).count()
    rewards = Reward.objects.filter(granted_at__gte=lo, granted_at__lt=hi).count()
    existing = billing.customers_before(lo)
    return Stats(
        signups=len(signed_up),
        referred_signups=referred,
        organic_signups=len(signed_up) - referred,
        referred_share=_ratio(referred, len(signed_up)),
        conversions=conversions,
        conversion_rate=_ratio(conversions, referred),
        rewards_issued=rewards,
        k_factor=round(referred / existing, 4) if existing else None,
    )
