from celery import shared_task


@shared_task(name="entitlements.record_grant_expiries", ignore_result=True)
def record_grant_expiries() -> int:
    """Beat: write the `expired` event of grants past their expiry (they already stopped
    counting at expires_at)."""
    from entitlements import services

    return services.grants_expiry_record()
