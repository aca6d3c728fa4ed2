"""Reads: a customer's effective entitlements computed from PostgreSQL (the cache in
entitlements/cache.py serves them on the hot path), features, events, the upgrade offer.

Sources, most generous wins (engine.resolve): the plan that gives access now, as billing
answers it (a live subscription's plan: `plan`, or `trial` while trialing; within a
past-due grace: `plan` until the grace ends; else the default plan: `default`), and the
customer's live grants (`grant`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Q

from billing import selectors as billing
from core.errors import NotFound
from entitlements import engine
from entitlements.models import (
    PLANS_ACCOUNT,
    Account,
    EntitlementEvent,
    Feature,
    Grant,
    MeteredTotal,
    Usage,
)


@dataclass(frozen=True)
class Entitlements:
    customer_id: str
    plan: str | None
    subscription_status: str | None
    features: dict[str, engine.FeatureState]
    versions: tuple[int, int]  # (the customer's, the plans'): the cache keys on both
    # When this answer changes by time alone (a grant's expiry, a trial's or grace's
    # end, a metered period's end): a cached copy is not used after it.
    valid_until: datetime | None
    currency: str | None = None
    interval: str | None = None
    plan_values: dict = field(default_factory=dict)
    on_test_clock: bool = False

    @property
    def version(self) -> int:
        """The public version (API.md): the sum of both, which moves on every change."""
        return self.versions[0] + self.versions[1]


def feature_get(key: str) -> Feature:
    try:
        return Feature.objects.get(key=key)
    except Feature.DoesNotExist:
        raise NotFound("feature_not_found", f"No feature {key!r}.") from None


def features_all() -> list[Feature]:
    return list(Feature.objects.order_by("key"))


def versions(customer_id: str) -> tuple[int, int]:
    """(the customer's version, the plans' version), both only ever growing."""
    rows = dict(
        Account.objects.filter(customer_id__in=[customer_id, PLANS_ACCOUNT]).values_list(
            "customer_id", "version"
        )
    )
    return rows.get(customer_id, 0), rows.get(PLANS_ACCOUNT, 0)


def grants_live(customer_id: str, now: datetime) -> list[Grant]:
    return list(
        Grant.objects.select_related("feature")
        .filter(customer_id=customer_id, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("created_at")
    )


def metered_period(access: billing.Access, at: datetime) -> tuple[datetime, datetime]:
    """The period a metered event at `at` counts in: the live subscription's current
    billing period when it contains `at`, else the calendar month (UTC) of `at`."""
    if access.period is not None and access.period[0] <= at < access.period[1]:
        return access.period
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _plan_source(access: billing.Access) -> str:
    if access.source == "default":
        return "default"
    return "trial" if access.trial else "plan"


def entitlements_compute(
    customer_id: str, *, only: str | Feature | None = None, used: int | None = None
) -> Entitlements:
    """Everything from PostgreSQL (no cache). `only`: one feature (its key, or the row a
    caller already holds); `used`: that limit feature's usage as the caller read it
    under the usage row's lock. Reserve passes both: under the lock every statement
    saved is lock time saved (docs/benchmarks.md, issue 14)."""
    version = versions(customer_id)  # first: a change committed after this read moves it
    access = billing.access_plan(customer_id)
    now = access.now or datetime.now(UTC)
    if only is None:
        features = features_all()
    else:
        features = [only if isinstance(only, Feature) else feature_get(only)]
    plan_values = access.plan.features if access.plan is not None else {}
    plan_source = _plan_source(access)
    plan_expiry = access.until
    grants: dict[str, list[Grant]] = {}
    for grant in grants_live(customer_id, now):
        grants.setdefault(grant.feature.key, []).append(grant)
    keys = [f.key for f in features]
    if used is not None and len(features) == 1:
        usage = {features[0].key: used}
    else:
        usage = dict(
            Usage.objects.filter(customer_id=customer_id, feature__key__in=keys).values_list(
                "feature__key", "used"
            )
        )
    period = metered_period(access, now)
    metered_keys = [f.key for f in features if f.type == engine.METERED]
    metered = (
        dict(
            MeteredTotal.objects.filter(
                customer_id=customer_id, feature__key__in=metered_keys, period_start=period[0]
            ).values_list("feature__key", "used")
        )
        if metered_keys
        else {}
    )
    valid_until = [plan_expiry] if plan_expiry else []
    states = {}
    for feature in features:
        candidates = [
            engine.Candidate(plan_source, plan_values.get(feature.key, engine.ABSENT), plan_expiry)
        ]
        for grant in grants.get(feature.key, []):
            candidates.append(engine.Candidate("grant", grant.value, grant.expires_at))
            if grant.expires_at:
                valid_until.append(grant.expires_at)
        count = (
            metered.get(feature.key, 0)
            if feature.type == engine.METERED
            else usage.get(feature.key, 0)
        )
        if feature.type == engine.METERED:
            valid_until.append(period[1])
        states[feature.key] = engine.resolve(feature.key, feature.type, candidates, count)
    return Entitlements(
        customer_id=customer_id,
        plan=access.plan.code if access.plan is not None else None,
        subscription_status=access.status,
        features=states,
        versions=version,
        valid_until=min(valid_until) if valid_until else None,
        currency=access.plan.currency if access.plan is not None else None,
        interval=access.plan.interval if access.plan is not None else None,
        plan_values=dict(plan_values),
        on_test_clock=access.on_test_clock,
    )


def upgrade_for(ents: Entitlements, state: engine.FeatureState, quantity: int) -> dict | None:
    """The cheapest active plan of the same currency and interval that would allow the
    request, or None."""
    if ents.currency is None:
        return None
    for plan in billing.plans_active().filter(currency=ents.currency, interval=ents.interval):
        if plan.code == ents.plan:
            continue
        value = plan.features.get(state.key, engine.ABSENT)
        if engine.plan_allows(state.type, value, state.used, quantity):
            limit = engine.normalise(state.type, value)
            return {
                "plan": plan.code,
                "name": plan.name,
                "limit": None if state.type == engine.BOOLEAN else limit,
            }
    return None


def events_for(customer_id: str) -> list[EntitlementEvent]:
    return list(
        EntitlementEvent.objects.filter(customer_id=customer_id).order_by("occurred_at", "id")
    )
