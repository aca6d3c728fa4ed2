"""Analytics writes: starting a what-if simulation."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from coupons.analytics import tasks
from coupons.analytics.models import SimulationRun
from coupons.models import Coupon

MAX_SIMULATION_DAYS = 90


@transaction.atomic
def simulation_start(*, coupon: Coupon, days: int, requested_by=None) -> SimulationRun:
    """Queue a what-if run of `coupon` over the carts of the last `days` days (1-90).
    The task is sent on commit, so the worker always finds the row."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_SIMULATION_DAYS:
        raise ValidationError(
            {"days": [f"Enter a number of days from 1 to {MAX_SIMULATION_DAYS}."]}
        )
    run = SimulationRun.objects.create(coupon=coupon, days=days, requested_by=requested_by)
    transaction.on_commit(lambda: tasks.simulation_run.delay(run.pk))
    return run
