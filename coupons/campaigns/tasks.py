"""Thin Celery tasks for flash-sale campaigns; safe to re-run after a crash."""

from celery import shared_task

from coupons.campaigns import services


@shared_task(name="campaigns.tasks.claims_expire_stale", ignore_result=True)
def claims_expire_stale() -> int:
    """Give back the units of claims held past claim_hold_minutes without being used."""
    return services.claims_expire_stale()
