"""Moving a subscription's status: only legal transitions (billing.engine.lifecycle),
each one recorded with its reason and the customer's time, and an outbox event for the
consumers. Runs in the caller's transaction, on a locked subscription row."""

from __future__ import annotations

from datetime import datetime

from billing import events
from billing.engine import lifecycle
from billing.models import Subscription, SubscriptionTransition


def payload(sub: Subscription) -> dict:
    return {
        "subscription_id": str(sub.pk),
        "customer_id": sub.customer.customer_id,
        "status": sub.status,
        "plan": sub.plan.code,
        "current_period_start": sub.current_period_start.isoformat(),
        "current_period_end": sub.current_period_end.isoformat(),
        "cancel_at_period_end": sub.cancel_at_period_end,
    }


def transition(sub: Subscription, to_status: str, reason: str, at: datetime) -> None:
    """`sub.status` -> `to_status`, or IllegalTransition (a bug, never a user error)."""
    from_status = sub.status
    lifecycle.check(from_status, to_status)
    moved = Subscription.objects.filter(pk=sub.pk, status=from_status).update(status=to_status)
    if not moved:  # the caller's lock makes this impossible; fail loudly if it is not held
        raise lifecycle.IllegalTransition(from_status, to_status)
    sub.status = to_status
    SubscriptionTransition.objects.create(
        subscription=sub, from_status=from_status, to_status=to_status, reason=reason, at=at
    )
    if to_status not in ("cancelled", "expired") and from_status:
        events.emit(events.SUBSCRIPTION_UPDATED, payload(sub), at=at)


def record(sub: Subscription, status: str, reason: str, at: datetime) -> None:
    """A change that keeps the status (a plan switch, a pending cancel), in the history."""
    SubscriptionTransition.objects.create(
        subscription=sub, from_status=status, to_status=status, reason=reason, at=at
    )


def created(sub: Subscription, reason: str, at: datetime) -> None:
    lifecycle.check("", sub.status)
    SubscriptionTransition.objects.create(
        subscription=sub, from_status="", to_status=sub.status, reason=reason, at=at
    )
    events.emit(events.SUBSCRIPTION_CREATED, payload(sub), at=at)
