"""Thin Celery tasks of the abuse module: load by id, call a service, safe to re-run."""

from celery import shared_task

from coupons.abuse import services
from coupons.abuse.models import AbuseAlert


@shared_task(
    name="abuse.tasks.alert_email",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=8,
)
def alert_email(alert_id: int, occurrence: int) -> bool:
    """Email marketing about an automatic action (a leaked code was disabled). Retried
    with backoff while the mail server refuses; never sent twice for one occurrence."""
    try:
        return services.alert_email(alert_id=alert_id, occurrence=occurrence)
    except AbuseAlert.DoesNotExist:
        return False
