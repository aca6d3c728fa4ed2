from celery import shared_task


@shared_task(name="referrals.reward_due", ignore_result=True)
def reward_due() -> int:
    """Beat: reward converted referrals whose hold has passed (wall-clock invitees)."""
    from referrals import services

    return services.rewards_due()
