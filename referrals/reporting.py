"""Referral reads for the admin's referrals overview: the funnel, referred vs organic
signups per week, the top referrers, and the rewards given and clawed back.

Selectors only (nothing is written, nothing is counted ahead of time). A range is two
inclusive dates, read as UTC days (as the stats API reads them: `selectors.bounds`);
weeks start on Monday (UTC) and the first and last weeks hold only the range's days.
Money is integer minor units per currency, never mixed and never a float; a rate is a
Decimal (None when there is nothing to divide by). docs/referrals-admin.md defines each
number:

- **Funnel** (a cohort): the referrals whose invitee signed up in the range
  (`signed_up_at`, on the invitee's clock); *converted*: those of them that reached
  `converted` (a transition to it was recorded, even if a refund rejected them later);
  *rewarded*: those that reached `rewarded`; *rejected* and *held for review*: their
  status now.
- **Signups per week**: billing customers created that week (billing's `created_at`);
  *referred*: those of them that have a referral (whatever its status); *organic*: the
  rest.
- **Top referrers**: the funnel per referrer, by rewarded, then converted, then signed
  up.
- **Rewards**: given = rewards granted in the range (`granted_at`), clawed back = the
  clawbacks made in it (`clawed_back_at`), each summed per currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncWeek

from billing import selectors as billing
from referrals.models import Referral, ReferralStatus, ReferralTransition, Reward
from referrals.selectors import bounds

MAX_DAYS = 371  # 53 weeks


def ratio(part: int, whole: int) -> Decimal | None:
    return Decimal(part) / Decimal(whole) if whole else None


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weeks(start: date, end: date) -> list[date]:
    """The Mondays of the weeks that hold a day of [start, end], oldest first."""
    first, last = monday(start), monday(end)
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


# --- the funnel -------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    signed_up: int
    converted: int
    rewarded: int
    rejected: int
    held: int

    @property
    def conversion_rate(self) -> Decimal | None:
        """converted / signed up."""
        return ratio(self.converted, self.signed_up)

    @property
    def reward_rate(self) -> Decimal | None:
        """rewarded / converted."""
        return ratio(self.rewarded, self.converted)


def _reached(status: str) -> Exists:
    return Exists(ReferralTransition.objects.filter(referral=OuterRef("pk"), to_status=status))


def _cohort(start: date, end: date):
    lo, hi = bounds(start, end)
    return Referral.objects.filter(signed_up_at__gte=lo, signed_up_at__lt=hi).alias(
        reached_converted=_reached(ReferralStatus.CONVERTED),
        reached_rewarded=_reached(ReferralStatus.REWARDED),
    )


FUNNEL_COUNTS = {
    "signed_up": Count("pk"),
    "converted": Count("pk", filter=Q(reached_converted=True)),
    "rewarded": Count("pk", filter=Q(reached_rewarded=True)),
    "rejected": Count("pk", filter=Q(status=ReferralStatus.REJECTED)),
    "held": Count("pk", filter=Q(held_for_review=True)),
}


def funnel(start: date, end: date) -> Funnel:
    """The referrals signed up in the range, and how far they got (one query)."""
    return Funnel(**_cohort(start, end).aggregate(**FUNNEL_COUNTS))


# --- signups per week -------------------------------------------------------------------


@dataclass(frozen=True)
class WeekSignups:
    week: date  # its Monday
    signups: int
    referred: int

    @property
    def organic(self) -> int:
        return self.signups - self.referred

    @property
    def referred_share(self) -> Decimal | None:
        return ratio(self.referred, self.signups)


def signups_by_week(start: date, end: date) -> list[WeekSignups]:
    """Billing's signups per week, split into referred and organic (two queries; the
    referred ones are a subquery of the invitees, never a list in Python)."""
    lo, hi = bounds(start, end)
    every = billing.signups_per_week(lo, hi)
    referred = billing.signups_per_week(lo, hi, among=Referral.objects.values("invitee_id"))
    return [WeekSignups(w, every.get(w, 0), referred.get(w, 0)) for w in weeks(start, end)]


# --- top referrers ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReferrerRow:
    referrer_id: str
    code: str
    signed_up: int
    converted: int
    rewarded: int
    rejected: int


def top_referrers(start: date, end: date, limit: int = 10) -> list[ReferrerRow]:
    """The funnel per referrer for the range's cohort, most rewarded first (then most
    converted, most signed up, by id)."""
    rows = (
        _cohort(start, end)
        .values("referrer_id", "code__code")
        .annotate(**{k: v for k, v in FUNNEL_COUNTS.items() if k != "held"})
        .order_by("-rewarded", "-converted", "-signed_up", "referrer_id")[:limit]
    )
    return [
        ReferrerRow(
            r["referrer_id"],
            r["code__code"],
            r["signed_up"],
            r["converted"],
            r["rewarded"],
            r["rejected"],
        )
        for r in rows
    ]


# --- rewards ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardTotals:
    currency: str
    given: int  # how many rewards
    given_minor: int
    clawed_back: int  # how many clawbacks
    clawed_back_minor: int

    @property
    def net_minor(self) -> int:
        return self.given_minor - self.clawed_back_minor


def rewards(start: date, end: date) -> list[RewardTotals]:
    """Per currency: the rewards granted in the range and the clawbacks made in it."""
    lo, hi = bounds(start, end)
    given = {
        r["currency"]: r
        for r in Reward.objects.filter(granted_at__gte=lo, granted_at__lt=hi)
        .values("currency")
        .annotate(n=Count("pk"), minor=Sum("amount_minor"))
        .order_by()
    }
    back = {
        r["currency"]: r
        for r in Reward.objects.filter(
            clawed_back_at__gte=lo, clawed_back_at__lt=hi, clawed_back_minor__gt=0
        )
        .values("currency")
        .annotate(n=Count("pk"), minor=Sum("clawed_back_minor"))
        .order_by()
    }
    return [
        RewardTotals(
            cur,
            given.get(cur, {}).get("n", 0),
            given.get(cur, {}).get("minor", 0),
            back.get(cur, {}).get("n", 0),
            back.get(cur, {}).get("minor", 0),
        )
        for cur in sorted(set(given) | set(back))
    ]


@dataclass(frozen=True)
class RewardWeek:
    given_minor: int
    clawed_back_minor: int


def rewards_by_week(start: date, end: date) -> dict[str, list[RewardWeek]]:
    """Currency -> per week of the range (aligned with `weeks`): the amounts given and
    clawed back."""
    lo, hi = bounds(start, end)
    index = {w: i for i, w in enumerate(weeks(start, end))}
    table: dict[str, list[list[int]]] = {}

    def add(rows, column: int) -> None:
        for r in rows:
            slot = table.setdefault(r["currency"], [[0, 0] for _ in index])
            slot[index[r["week"].date()]][column] += r["minor"]

    add(
        Reward.objects.filter(granted_at__gte=lo, granted_at__lt=hi)
        .annotate(week=TruncWeek("granted_at", tzinfo=UTC))
        .values("currency", "week")
        .annotate(minor=Sum("amount_minor"))
        .order_by(),
        0,
    )
    add(
        Reward.objects.filter(clawed_back_at__gte=lo, clawed_back_at__lt=hi)
        .annotate(week=TruncWeek("clawed_back_at", tzinfo=UTC))
        .values("currency", "week")
        .annotate(minor=Sum("clawed_back_minor"))
        .order_by(),
        1,
    )
    return {cur: [RewardWeek(g, c) for g, c in table[cur]] for cur in sorted(table)}
