"""Thin Celery tasks: load by id / call a service; safe to re-run after a crash."""

from celery import shared_task

from coupons import services


@shared_task(ignore_result=True)
def expire_stale_reservations() -> int:
    """Give back the uses of reservations held past COUPON_RESERVATION_TTL."""
    return services.redemptions_expire_stale()
