"""Billing's outbox events that change what a customer may do (at least once; each
handler is idempotent): subscription changes move the customer's version and are
written in the history once; a plan's edit moves every answer's version."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing import events
from entitlements import cache, services

SUBSCRIPTION_TYPES = (
    events.SUBSCRIPTION_CREATED,
    events.SUBSCRIPTION_UPDATED,
    events.SUBSCRIPTION_CANCELLED,
)


def on_subscription(event_id: int, event_type: str, payload: dict) -> None:
    services.subscription_event_record(
        event_id=event_id, event_type=event_type, payload=payload, at=timezone.now()
    )


def on_plan(event_id: int, event_type: str, payload: dict) -> None:
    cache.plans_changed()


def hint_subscription(event_id: int, event_type: str, payload: dict) -> None:
    """At billing's commit, in its process: the customer's next read anywhere recomputes
    (the delivery then records the history and moves the version again)."""
    if payload.get("customer_id"):
        with transaction.atomic():
            cache.changed(payload["customer_id"])


def hint_plan(event_id: int, event_type: str, payload: dict) -> None:
    with transaction.atomic():
        cache.plans_changed()


def connect() -> None:
    for event_type in SUBSCRIPTION_TYPES:
        events.subscribe(event_type, on_subscription)
        events.subscribe_at_commit(event_type, hint_subscription)
    events.subscribe(events.PLAN_UPDATED, on_plan)
    events.subscribe_at_commit(events.PLAN_UPDATED, hint_plan)
