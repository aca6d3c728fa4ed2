"""Thin Celery tasks: take an id, call a service; safe to run twice or after a crash."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from . import services


@shared_task(ignore_result=True, acks_late=True)
def batch_generate(batch_id: str) -> None:
    """Generate the batch's missing codes. A second copy of this task (redelivery, the
    beat job) returns at once while one runs; after a crash it continues from the codes
    that exist. Out of time, it queues itself again and the next run carries on."""
    try:
        services.batch_generate(batch_id=batch_id)
    except SoftTimeLimitExceeded:
        batch_generate.delay(batch_id)


@shared_task(ignore_result=True)
def batches_resume_stalled() -> int:
    """Beat job: re-queue batches left `generating` with no progress for a while."""
    return services.batches_resume_stalled()
