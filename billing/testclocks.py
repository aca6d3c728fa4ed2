"""Test clocks (API.md): a customer on a clock lives on its time; advancing runs, in
time order, everything that falls due for the clock's customers up to the target.

The clock steps from one due moment to the next (the earliest trial end, period end or
retry among its customers), runs billing's due work at that moment (billing.renewals,
the same code beat runs), and repeats until nothing is due before the target. Small
advances finish inside the request (`ready`); one that takes longer than
BILLING_CLOCK_SYNC_SECONDS goes on in a Celery task (`advancing`) from where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Min

from billing import events, renewals
from billing.models import Invoice, InvoiceStatus, Subscription, SubscriptionStatus, TestClock
from core.errors import Conflict, Invalid, NotFound

logger = logging.getLogger(__name__)

# Other apps' due work on a clock (grant expiry, referral holds): fn(clock_id, moment)
# -> the next moment they need after `moment`, or None. Registered in AppConfig.ready().
DueSource = Callable[[str, datetime], datetime | None]
_sources: list[tuple[DueSource, Callable[[str, datetime], None]]] = []


def register(next_due: DueSource, run: Callable[[str, datetime], None]) -> None:
    if (next_due, run) not in _sources:
        _sources.append((next_due, run))


def _enabled() -> None:
    if not settings.BILLING_TEST_CLOCKS_ENABLED:
        raise NotFound("not_found", "Test clocks are off.")


def clock_get(*, clock_id) -> TestClock:
    _enabled()
    try:
        return TestClock.objects.get(pk=clock_id)
    except (TestClock.DoesNotExist, ValueError, ValidationError):
        raise NotFound("test_clock_not_found", "No such test clock.") from None


def clock_create(*, frozen_time: datetime, name: str = "") -> TestClock:
    _enabled()
    return TestClock.objects.create(frozen_time=frozen_time, name=name)


def _next_due(clock_id, after: datetime, until: datetime) -> datetime | None:
    subs = Subscription.objects.filter(customer__test_clock_id=clock_id)
    grace = subs.filter(status=SubscriptionStatus.PAST_DUE, grace_ended_at__isnull=True).aggregate(
        m=Min("past_due_since")
    )["m"]
    candidates = [
        grace + timedelta(days=settings.BILLING_GRACE_DAYS) if grace else None,
        subs.filter(status=SubscriptionStatus.TRIALING).aggregate(m=Min("trial_end"))["m"],
        subs.filter(status=SubscriptionStatus.ACTIVE).aggregate(m=Min("current_period_end"))["m"],
        Invoice.objects.filter(
            customer__test_clock_id=clock_id, status=InvoiceStatus.OPEN
        ).aggregate(m=Min("next_attempt_at"))["m"],
    ]
    for next_due, _ in _sources:
        candidates.append(next_due(str(clock_id), after))
    due = [c for c in candidates if c is not None and c <= until]
    return min(due) if due else None


def clock_advance(*, clock_id, frozen_time: datetime) -> TestClock:
    """Move the clock to `frozen_time` (never back: 400), running what falls due."""
    _enabled()
    with transaction.atomic():
        clock = TestClock.objects.select_for_update().filter(pk=clock_id).first()
        if clock is None:
            raise NotFound("test_clock_not_found", "No such test clock.")
        if clock.status == TestClock.Status.ADVANCING:
            raise Conflict("test_clock_advancing", "The clock is still advancing.", retryable=True)
        if frozen_time < clock.frozen_time:
            raise Invalid(
                "invalid_request",
                "A test clock cannot move back in time.",
                fields={"frozen_time": ["Earlier than the clock's time."]},
            )
        if frozen_time == clock.frozen_time:
            return clock
        TestClock.objects.filter(pk=clock.pk).update(
            status=TestClock.Status.ADVANCING, target_time=frozen_time
        )
    done = _run(clock_id, frozen_time, budget=settings.BILLING_CLOCK_SYNC_SECONDS)
    if not done:
        from billing import tasks

        transaction.on_commit(lambda: tasks.queue(tasks.advance_clock, str(clock_id)))
    return TestClock.objects.get(pk=clock_id)


def clock_advance_continue(*, clock_id) -> None:
    """The Celery side of a long advance: run to the target, however long it takes."""
    clock = TestClock.objects.filter(pk=clock_id, status=TestClock.Status.ADVANCING).first()
    if clock is None or clock.target_time is None:
        return
    _run(clock_id, clock.target_time, budget=None)


def _set_time(clock_id, moment: datetime) -> None:
    TestClock.objects.filter(pk=clock_id, frozen_time__lt=moment).update(frozen_time=moment)


def _run(clock_id, target: datetime, *, budget: float | None) -> bool:
    started = time.monotonic()
    stuck_at = None
    while True:
        now = TestClock.objects.values_list("frozen_time", flat=True).get(pk=clock_id)
        moment = _next_due(clock_id, now, target) or target
        moment = max(moment, now)
        _set_time(clock_id, moment)
        handled = renewals.run_due(clock_id=clock_id, now=moment)
        if handled == 0 and moment < target:
            # Due work that would not run (a failing roll, logged): step past it rather
            # than loop at this moment for ever.
            if stuck_at == moment:
                logger.error(
                    "test clock %s: work due at %s does not run; skipped", clock_id, moment
                )
                _set_time(clock_id, target)
            stuck_at = moment
        for _, run in _sources:
            run(str(clock_id), moment)
        # Consumers see the clock's events before it moves on (a referral's conversion
        # before its hold is counted).
        events.deliver_pending_now()
        if moment >= target and _next_due(clock_id, moment, target) is None:
            TestClock.objects.filter(pk=clock_id).update(
                status=TestClock.Status.READY, frozen_time=target, target_time=None
            )
            return True
        if budget is not None and time.monotonic() - started > budget:
            return False
