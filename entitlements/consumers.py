"""Billing's outbox events that change what a customer may do (at least once; each
handler is idempotent): subscription changes move the customer's version and are
written in the history once; a plan's edit moves every answer's version."""

from __future__ import annotations

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


def connect() -> None:
    for event_type in SUBSCRIPTION_TYPES:
        events.subscribe(event_type, on_subscription)
    events.subscribe(events.PLAN_UPDATED, on_plan)
