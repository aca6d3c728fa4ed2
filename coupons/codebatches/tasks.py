"""Thin Celery tasks: take an id, call a service; safe to run twice or after a crash."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from . import services
from .models import CodeBatch

logger = logging.getLogger(__name__)

# A run that could not start tries again after this long, at most this many times; the
# beat job (CODEBATCH_STALL_SECONDS) covers whatever is still left after that.
RETRY_SECONDS = 10
MAX_RETRIES = 12


@shared_task(
    name="codebatches.tasks.batch_generate",
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=MAX_RETRIES,
)
def batch_generate(self, batch_id: str) -> None:
    """Generate the batch's missing codes. A second copy of this task (redelivery, the
    beat job) waits for the batch's lock and returns if its holder is making progress;
    after a crash it continues from the codes that exist. It runs again later when the
    lock's holder made no progress while it waited (a dead worker's backend PostgreSQL
    has not dropped yet) or the database failed it; out of time, it queues itself again
    and the next run carries on."""
    before = services.batch_progress(batch_id)
    try:
        batch = services.batch_generate(batch_id=batch_id, lock_wait=services.LOCK_WAIT_SECONDS)
    except SoftTimeLimitExceeded:
        batch_generate.delay(batch_id)
        return
    except (OperationalError, InterfaceError) as exc:
        _retry(self, batch_id, f"the database failed it ({exc})")
        return
    if (
        batch is None
        and before is not None
        and before[0] == CodeBatch.Status.GENERATING
        and services.batch_progress(batch_id) == before
    ):
        _retry(self, batch_id, "its lock is held by a session that made no progress")


def _retry(task, batch_id: str, why: str) -> None:
    if task.request.retries >= task.max_retries:
        logger.warning("code batch %s: %s; no retries left, the beat job resumes it", batch_id, why)
        return
    logger.warning("code batch %s: %s; retrying in %s s", batch_id, why, RETRY_SECONDS)
    raise task.retry(countdown=RETRY_SECONDS)


@shared_task(name="codebatches.tasks.batches_resume_stalled", ignore_result=True)
def batches_resume_stalled() -> int:
    """Beat job: re-queue batches left `generating` with no progress for a while."""
    return services.batches_resume_stalled()
