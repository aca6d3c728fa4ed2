from celery import shared_task

from core import idempotency


@shared_task(ignore_result=True)
def purge_idempotency_records() -> int:
    """Drop stored responses older than IDEMPOTENCY_TTL_HOURS."""
    return idempotency.purge_expired()
