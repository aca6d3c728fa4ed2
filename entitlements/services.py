"""Writes and decisions of entitlements: features, grants, reserve / release of limits,
metered usage, and the check. Every change moves the customer's version in its own
transaction (cache.changed), so the next read anywhere sees it.

Reserve is the atomic part: the customer's usage row locked, the limit read from
PostgreSQL (never the cache) in the same transaction, a conditional update
(`used + quantity <= limit`) and a reservation row unique per (customer, feature,
resource): a retry counts once, and release gives back exactly what was taken. After a
downgrade below current usage nothing is taken away; new reserves are refused until the
usage is under the new limit (docs/entitlements.md).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing import selectors as billing
from core.errors import Conflict, Invalid, NotFound, Unprocessable
from entitlements import cache, locks, selectors
from entitlements.models import (
    EntitlementEvent,
    EventKind,
    Feature,
    FeatureType,
    Grant,
    Reservation,
    Usage,
)

LIMIT_REACHED = "limit_reached"
NOT_ENABLED = "feature_not_enabled"
MESSAGES = {
    LIMIT_REACHED: "The plan's limit for this feature is reached.",
    NOT_ENABLED: "This feature is not part of the customer's plan.",
}


@dataclass(frozen=True)
class Decision:
    """The answer to a check, reserve or release (API.md's body)."""

    allowed: bool
    feature: str
    limit: int | None
    used: int
    reason: str = ""
    upgrade: dict | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason, "")


class Denied(Unprocessable):
    """A reserve refused (for the monolith's own code: `reserving` raises it)."""

    def __init__(self, decision: Decision):
        super().__init__(decision.reason, decision.message)
        self.decision = decision


# --- features ---------------------------------------------------------------------------


@transaction.atomic
def feature_create(*, key: str, name: str, type: str, description: str = "") -> Feature:
    if type not in FeatureType.values:
        raise Invalid("invalid_request", "Unknown type.", fields={"type": ["Unknown type."]})
    try:
        with transaction.atomic():
            feature = Feature.objects.create(key=key, name=name, type=type, description=description)
    except IntegrityError:
        raise Conflict("feature_exists", f"A feature {key!r} exists.") from None
    cache.plans_changed()  # every cached answer lists the features
    return feature


# --- grants -----------------------------------------------------------------------------


def grant_value_check(feature: Feature, value: object) -> object:
    """A grant's value for its feature's type, or Invalid."""
    if feature.type == FeatureType.BOOLEAN:
        if value is not True:
            raise Invalid(
                "invalid_request",
                "A boolean feature is granted with true.",
                fields={"value": ["Must be true for a boolean feature."]},
            )
        return True
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(
            "invalid_request",
            "A limit is granted as a whole number or null (unlimited).",
            fields={"value": ["A whole number >= 0, or null for unlimited."]},
        )
    return value


@transaction.atomic
def grant_create(
    *,
    customer_id: str,
    feature_key: str,
    value: object,
    expires_at: datetime | None,
    reason: str = "",
    created_by: str = "",
) -> Grant:
    feature = selectors.feature_get(feature_key)
    value = grant_value_check(feature, value)
    now = billing.customer_facts(customer_id).now  # grants count on the customer's clock
    if expires_at is not None and expires_at <= now:
        raise Invalid(
            "invalid_request",
            "A grant must expire in the future.",
            fields={"expires_at": ["Must be in the future."]},
        )
    grant = Grant.objects.create(
        customer_id=customer_id,
        feature=feature,
        value=value,
        expires_at=expires_at,
        reason=reason,
        created_by=created_by,
    )
    _event(customer_id, EventKind.GRANTED, feature.key, grant, now, value=value, reason=reason)
    cache.changed(customer_id)
    return grant


@transaction.atomic
def grant_revoke(*, customer_id: str, grant_id, reason: str = "", by: str = "") -> Grant:
    """Revoking twice is one revoke (the second call returns the revoked grant)."""
    try:
        grant = (
            Grant.objects.select_for_update(of=("self",))
            .select_related("feature")
            .get(pk=grant_id, customer_id=customer_id)
        )
    except (Grant.DoesNotExist, ValueError, ValidationError):
        raise NotFound("grant_not_found", "No such grant for this customer.") from None
    if grant.revoked_at is not None:
        return grant
    now = timezone.now()
    grant.revoked_at = now
    grant.save(update_fields=["revoked_at"])
    _event(customer_id, EventKind.REVOKED, grant.feature.key, grant, now, reason=reason, by=by)
    cache.changed(customer_id)
    return grant


def grants_expiry_record(*, now: datetime | None = None, batch: int = 500) -> int:
    """Beat job: record an `expired` event for each grant past its expiry. The grant
    stopped counting at `expires_at` by itself; this only writes the history (and moves
    the version, for caches that somehow kept an answer past its valid_until)."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            grants = list(
                Grant.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("feature")
                .filter(
                    revoked_at__isnull=True, expiry_recorded_at__isnull=True, expires_at__lte=now
                )
                .order_by("expires_at")[:batch]
            )
            for grant in grants:
                Grant.objects.filter(pk=grant.pk).update(expiry_recorded_at=now)
                _event(
                    grant.customer_id, EventKind.EXPIRED, grant.feature.key, grant, grant.expires_at
                )
                cache.changed(grant.customer_id)
        done += len(grants)
        if len(grants) < batch:
            return done


def _event(customer_id, kind, feature_key, grant, at, source_event="", **detail) -> None:
    EntitlementEvent.objects.create(
        customer_id=customer_id,
        kind=kind,
        feature_key=feature_key,
        grant=grant,
        occurred_at=at,
        source_event=source_event,
        detail={k: v for k, v in detail.items() if v not in ("", None) or k == "value"},
    )


# --- billing's changes (consumers.py) -----------------------------------------------------


def subscription_event_record(*, event_id: int, event_type: str, payload: dict, at) -> bool:
    """A billing subscription event, once per event (the outbox delivers at least once):
    a `plan_changed` event in the history and the customer's version moved."""
    customer_id = payload.get("customer_id")
    if not customer_id:
        return False
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO entitlements_entitlementevent "
                "(customer_id, kind, feature_key, detail, occurred_at, source_event, created_at) "
                "VALUES (%s, %s, '', %s::jsonb, %s, %s, now()) "
                "ON CONFLICT (customer_id, source_event) WHERE source_event <> '' DO NOTHING",
                [
                    customer_id,
                    EventKind.PLAN_CHANGED,
                    _json(
                        {
                            "billing_event": event_type,
                            "plan": payload.get("plan"),
                            "status": payload.get("status"),
                            **({"access": payload["access"]} if "access" in payload else {}),
                        }
                    ),
                    at,
                    f"billing:{event_id}",
                ],
            )
            recorded = cursor.rowcount == 1
        cache.changed(customer_id)  # even on a redelivery: moving a version is harmless
    return recorded


def _json(value: dict) -> str:
    import json

    return json.dumps(value)


# --- check, reserve, release ----------------------------------------------------------------


def _decide(ents: selectors.Entitlements, key: str, quantity: int) -> Decision:
    state = ents.features[key]
    if state.allows(quantity):
        return Decision(True, key, state.limit, state.used)
    reason = NOT_ENABLED if not state.enabled else LIMIT_REACHED
    return Decision(
        False, key, state.limit, state.used, reason, selectors.upgrade_for(ents, state, quantity)
    )


def check(*, customer_id: str, feature_key: str, quantity: int = 1) -> Decision:
    """Read-only: from the cache when it allows; a denial is confirmed from PostgreSQL
    (a cache never answers with a stale denial)."""
    ents = cache.entitlements_get(customer_id)
    if feature_key not in ents.features:
        selectors.feature_get(feature_key)  # 404 feature_not_found, or a feature just made
        ents = selectors.entitlements_compute(customer_id)
    decision = _decide(ents, feature_key, quantity)
    if decision.allowed:
        return decision
    return _decide(
        selectors.entitlements_compute(customer_id, only=feature_key), feature_key, quantity
    )


def _limit_feature(feature_key: str) -> Feature:
    feature = selectors.feature_get(feature_key)
    if feature.type != FeatureType.LIMIT:
        raise Invalid(
            "invalid_request",
            "Only limit features are reserved; metered features report usage events.",
            fields={"feature": [f"{feature.key!r} is a {feature.type} feature."]},
        )
    return feature


@transaction.atomic
def reserve(*, customer_id: str, feature_key: str, resource_id: str, quantity: int = 1) -> Decision:
    feature = _limit_feature(feature_key)
    if quantity < 1:
        raise Invalid("invalid_request", "Bad quantity.", fields={"quantity": ["At least 1."]})
    usage = locks.usage_lock(customer_id, feature)
    held = Reservation.objects.filter(
        customer_id=customer_id, feature=feature, resource_id=resource_id
    ).first()
    ents = selectors.entitlements_compute(customer_id, only=feature, used=usage.used)
    state = ents.features[feature.key]
    if held is not None:  # a retry of a reserve that counted: counted once
        return Decision(True, feature.key, state.limit, usage.used)
    decision = _decide(ents, feature.key, quantity)
    if not decision.allowed:
        return decision
    moved = Usage.objects.filter(pk=usage.pk)
    if state.limit is not None:
        moved = moved.filter(used__lte=state.limit - quantity)
    if moved.update(used=F("used") + quantity) != 1:  # never: the row is locked
        return Decision(False, feature.key, state.limit, usage.used, LIMIT_REACHED)
    Reservation.objects.create(
        customer_id=customer_id, feature=feature, resource_id=resource_id, quantity=quantity
    )
    cache.changed(customer_id)
    return Decision(True, feature.key, state.limit, usage.used + quantity)


@transaction.atomic
def release(*, customer_id: str, feature_key: str, resource_id: str) -> Decision:
    """Give back exactly what the reservation took; releasing what is not held is a no-op."""
    feature = _limit_feature(feature_key)
    usage = locks.usage_lock(customer_id, feature)
    held = (
        Reservation.objects.select_for_update()
        .filter(customer_id=customer_id, feature=feature, resource_id=resource_id)
        .first()
    )
    used = usage.used
    if held is not None:
        Usage.objects.filter(pk=usage.pk).update(used=F("used") - held.quantity)
        held.delete()
        used -= held.quantity
        cache.changed(customer_id)
    ents = selectors.entitlements_compute(customer_id, only=feature, used=used)
    state = ents.features[feature.key]
    return Decision(True, feature.key, state.limit, used)


@contextlib.contextmanager
def reserving(
    *, customer_id: str, feature_key: str, resource_id: str, quantity: int = 1
) -> Iterator[Decision]:
    """For the monolith's own code: reserve, then run the block, in one transaction (a
    savepoint inside the caller's): the reserve and the block's writes commit together,
    and an exception from the block rolls both back — nothing to release, and a database
    error in the block leaves the caller's transaction usable. Raises Denied, before the
    block runs, when the reserve is refused (docs/entitlements.md, "create a project")."""
    with transaction.atomic():
        decision = reserve(
            customer_id=customer_id,
            feature_key=feature_key,
            resource_id=resource_id,
            quantity=quantity,
        )
        if not decision.allowed:
            raise Denied(decision)
        yield decision


# --- metered usage -------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageIn:
    id: str
    customer_id: str
    feature: str
    quantity: int
    timestamp: datetime


_INSERT_EVENTS = """
INSERT INTO entitlements_usageevent
    (event_id, customer_id, feature_id, quantity, timestamp, period_start, created_at)
SELECT * , now()
  FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::timestamptz[],
              %s::timestamptz[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_ADD_TOTALS = """
INSERT INTO entitlements_meteredtotal AS t (customer_id, feature_id, period_start, period_end, used)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::bigint[])
ON CONFLICT (customer_id, feature_id, period_start) DO UPDATE SET used = t.used + EXCLUDED.used
"""


@transaction.atomic
def usage_record(*, events: list[UsageIn]) -> tuple[int, int]:
    """(accepted, duplicates) of this call's events: an event id counts once, ever
    (ON CONFLICT DO NOTHING: a concurrent call with the same id waits, then skips it).
    Each event counts in the billing period containing its timestamp (the customer's
    current period, else the calendar month)."""
    if not events:
        return 0, 0
    features = {f.key: f for f in Feature.objects.filter(key__in={e.feature for e in events})}
    unknown = sorted({e.feature for e in events} - set(features))
    if unknown:
        raise NotFound("feature_not_found", f"No feature {unknown[0]!r}.")
    not_metered = sorted({k for k, f in features.items() if f.type != FeatureType.METERED})
    if not_metered:
        raise Invalid(
            "invalid_request",
            "Usage events are for metered features.",
            fields={"events": [f"{not_metered[0]!r} is not a metered feature."]},
        )
    # One lock order for every call (event ids, then the totals' keys, then the customers'
    # versions): two calls with the same events in other orders would else deadlock.
    events = sorted(events, key=lambda e: e.id)
    access: dict[str, billing.Access] = {}
    periods = []
    for event in events:
        if event.customer_id not in access:
            access[event.customer_id] = billing.access_plan(event.customer_id)
        periods.append(selectors.metered_period(access[event.customer_id], event.timestamp))
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_EVENTS,
            [
                [e.id for e in events],
                [e.customer_id for e in events],
                [features[e.feature].pk for e in events],
                [e.quantity for e in events],
                [e.timestamp for e in events],
                [p[0] for p in periods],
            ],
        )
        inserted = {row[0] for row in cursor.fetchall()}
        totals: dict[tuple, int] = defaultdict(int)
        seen = set()
        for event, period in zip(events, periods, strict=True):
            if event.id in inserted and event.id not in seen:
                seen.add(event.id)
                totals[(event.customer_id, features[event.feature].pk, *period)] += event.quantity
        if totals:
            keys = sorted(totals)
            cursor.execute(
                _ADD_TOTALS,
                [
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [k[2] for k in keys],
                    [k[3] for k in keys],
                    [totals[k] for k in keys],
                ],
            )
    for customer_id in sorted({k[0] for k in totals}):
        cache.changed(customer_id)
    return len(inserted), len(events) - len(inserted)
