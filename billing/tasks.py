"""Thin Celery tasks: load by id, call a service. Beat rows: migration 0002."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


def queue(task, *args) -> None:
    """`task.delay(*args)` from an on_commit hook: a broker outage is logged, never
    raised into the request that already committed (a sweeper or beat job catches up)."""
    try:
        task.delay(*args)
    except Exception:
        logger.warning("billing: %s%r not queued (broker down?)", task.name, args)


@shared_task(name="billing.deliver_event", ignore_result=True, max_retries=5)
def deliver_event(event_id: int) -> None:
    from billing import events

    events.deliver(event_id)


@shared_task(name="billing.deliver_events", ignore_result=True)
def deliver_events(event_ids: list[int]) -> None:
    from billing import events

    events.deliver_many(event_ids)


@shared_task(name="billing.sweep_outbox", ignore_result=True)
def sweep_outbox() -> int:
    from billing import events

    return events.sweep()


@shared_task(name="billing.run_due", ignore_result=True)
def run_due() -> int:
    """Beat, every minute: renewals, trial ends, scheduled changes, period-end cancels
    and dunning retries of customers on the wall clock. Runs the due work itself and
    fans out BILLING_RENEWAL_PARALLELISM - 1 more runners, so several workers share a
    large due set (SKIP LOCKED keeps them apart); each returns when nothing is due."""
    from django.conf import settings

    for _ in range(max(0, settings.BILLING_RENEWAL_PARALLELISM - 1)):
        queue(run_due_worker)
    return run_due_worker()


@shared_task(name="billing.run_due_worker", ignore_result=True)
def run_due_worker() -> int:
    """One runner of the due work. It stops after BILLING_RUN_DUE_SECONDS (well inside
    the task's soft time limit) and queues its own continuation, so a due set of any
    size is worked through without a task ever being killed for its length."""
    from django.conf import settings

    from billing import renewals

    handled, finished = renewals.run_due_within(budget_seconds=settings.BILLING_RUN_DUE_SECONDS)
    if not finished:
        queue(run_due_worker)
    return handled


@shared_task(name="billing.reconcile_attempts", ignore_result=True)
def reconcile_attempts() -> int:
    from billing.payments import services

    return services.attempts_reconcile()


@shared_task(name="billing.advance_clock", ignore_result=True)
def advance_clock(clock_id: str) -> None:
    from billing import testclocks

    testclocks.clock_advance_continue(clock_id=clock_id)


@shared_task(
    name="billing.send_dunning_email",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_dunning_email(invoice_id: str, attempt: int, final: bool) -> None:
    from billing.dunning import emails

    emails.dunning_email_send(invoice_id=invoice_id, attempt=attempt, final=final)
