"""Billing's outbox (STYLE "cross-app events"): an event row written in the same
transaction as the change it reports, delivered after commit by a Celery task to the
in-process consumers that subscribed to its type, and swept by a beat job for anything a
crash left undelivered. Delivery is at least once; every consumer must be idempotent
(the event id is the natural key to remember).

Consumers subscribe in their AppConfig.ready(): `events.subscribe("invoice.paid", fn)`;
`fn(event_id, type, payload)` runs in a savepoint of the delivery's transaction (which
holds the event row), after the change committed: it writes its own app's tables, and
queues anything outside the process with on_commit. A consumer that raises leaves the
event undelivered; it is retried, with the others, by the sweeper.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import OutboxEvent
from core import bulk

logger = logging.getLogger(__name__)

SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_UPDATED = "subscription.updated"
SUBSCRIPTION_CANCELLED = "subscription.cancelled"
INVOICE_PAID = "invoice.paid"
INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
CREDIT_NOTE_CREATED = "credit_note.created"
PLAN_UPDATED = "plan.updated"  # a plan created or edited (entitlements re-read features)
TYPES = (
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_CANCELLED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    CREDIT_NOTE_CREATED,
    PLAN_UPDATED,
)

Consumer = Callable[[int, str, dict], None]
_consumers: dict[str, list[Consumer]] = defaultdict(list)


def subscribe(event_type: str, consumer: Consumer) -> None:
    if event_type not in TYPES:
        raise ValueError(f"unknown billing event {event_type!r}")
    if consumer not in _consumers[event_type]:
        _consumers[event_type].append(consumer)


def unsubscribe(event_type: str, consumer: Consumer) -> None:
    if consumer in _consumers[event_type]:
        _consumers[event_type].remove(consumer)
    if consumer in _at_commit[event_type]:
        _at_commit[event_type].remove(consumer)


# Hints run in the emitting process right after the change commits, before the delivery
# task: a cache that must see a change on the next read drops its copy at once (the
# delivery, at least once, still follows and is what a consumer must rely on). A hint
# that raises is logged and ignored.
_at_commit: dict[str, list[Consumer]] = defaultdict(list)


def subscribe_at_commit(event_type: str, consumer: Consumer) -> None:
    if event_type not in TYPES:
        raise ValueError(f"unknown billing event {event_type!r}")
    if consumer not in _at_commit[event_type]:
        _at_commit[event_type].append(consumer)


def _hint_all(events: list[OutboxEvent]) -> None:
    for event in events:
        _hint(event)


def _hint(event: OutboxEvent) -> None:
    for consumer in list(_at_commit.get(event.type, ())):
        try:
            consumer(event.pk, event.type, event.payload)
        except Exception:
            logger.exception(
                "billing event %s (%s): an at-commit hint failed", event.pk, event.type
            )


def emit(event_type: str, payload: dict, *, at: datetime) -> OutboxEvent:
    """Write the event in the caller's transaction; queue its delivery after commit."""
    if event_type not in TYPES:
        raise ValueError(f"unknown billing event {event_type!r}")
    event = OutboxEvent.objects.create(type=event_type, payload=payload, occurred_at=at)
    if _at_commit.get(event_type):
        transaction.on_commit(lambda: _hint(event))
    transaction.on_commit(lambda: _queue(event.pk))
    return event


def emit_many(items: list[tuple[str, dict]], *, at: datetime) -> list[OutboxEvent]:
    """emit() for a batch (bulk renewals): one insert, one delivery task for them all."""
    for event_type, _ in items:
        if event_type not in TYPES:
            raise ValueError(f"unknown billing event {event_type!r}")
    ids = bulk.next_ids(OutboxEvent._meta.db_table, len(items))
    created = [
        OutboxEvent(id=pk, type=t, payload=p, occurred_at=at)
        for pk, (t, p) in zip(ids, items, strict=True)
    ]
    bulk.copy_models(created)
    hinted = [event for event in created if _at_commit.get(event.type)]
    if hinted:
        transaction.on_commit(lambda: _hint_all(hinted))
    if ids:
        transaction.on_commit(lambda: _queue_many(ids))
    return created


def _queue(event_id: int) -> None:
    from billing import tasks  # the tasks module imports this one

    tasks.queue(tasks.deliver_event, event_id)  # a broker outage: the sweeper delivers it


def _queue_many(ids: list[int]) -> None:
    from billing import tasks

    tasks.queue(tasks.deliver_events, ids)


def deliver(event_id: int) -> bool:
    """Run every consumer of the event, then mark it delivered. True when delivered (now
    or before). The row lock (SKIP LOCKED) keeps two deliveries of one event apart."""
    with transaction.atomic():
        event = (
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_id, delivered_at__isnull=True)
            .first()
        )
        if event is None:
            return not OutboxEvent.objects.filter(pk=event_id, delivered_at__isnull=True).exists()
        try:
            for consumer in list(_consumers.get(event.type, ())):
                # Consumers write their own tables in their own transactions.
                with transaction.atomic():
                    consumer(event.pk, event.type, event.payload)
        except Exception as exc:
            logger.exception("billing event %s (%s): a consumer failed", event.pk, event.type)
            OutboxEvent.objects.filter(pk=event.pk).update(
                attempts=event.attempts + 1, last_error=repr(exc)[:500]
            )
            return False
        OutboxEvent.objects.filter(pk=event.pk).update(
            delivered_at=timezone.now(), attempts=event.attempts + 1, last_error=""
        )
        return True


def deliver_many(ids: list[int]) -> int:
    """Deliver a batch: events with no consumer (the common case for most types) are
    marked in one statement; the others one by one through deliver()."""
    plain = [t for t in TYPES if not _consumers.get(t)]
    now = timezone.now()
    marked = OutboxEvent.objects.filter(
        pk__in=ids, delivered_at__isnull=True, type__in=plain
    ).update(delivered_at=now, attempts=F("attempts") + 1)
    rest = OutboxEvent.objects.filter(pk__in=ids, delivered_at__isnull=True).values_list(
        "pk", flat=True
    )
    return marked + sum(1 for pk in rest if deliver(pk))


def sweep(*, older_than_seconds: int = 30, limit: int = 500) -> int:
    """Deliver what is still undelivered (a lost task, a crash, a failed consumer)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        OutboxEvent.objects.filter(delivered_at__isnull=True, created_at__lt=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in ids if deliver(pk))


def deliver_pending_now() -> int:
    """Deliver every undelivered event at once (test clocks, tests)."""
    ids = list(
        OutboxEvent.objects.filter(delivered_at__isnull=True)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    return sum(1 for pk in ids if deliver(pk))
