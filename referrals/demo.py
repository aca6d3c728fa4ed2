"""seed_demo's referrals: Ada (billing's demo) refers Hal, a new wall-clock customer who
subscribes to Pro with the welcome coupon: converted, rewarded when the hold ends."""

from __future__ import annotations

from billing import services as billing_services
from referrals import services
from referrals.models import Referral

REFERRER, INVITEE = "demo-ada", "demo-hal"


def load() -> list[str]:
    code, _ = services.code_get_or_create(customer_id=REFERRER)
    if not Referral.objects.filter(invitee_id=INVITEE).exists():
        referral, _ = services.attribute(code=code.code, customer_id=INVITEE)
        billing_services.customer_upsert(
            customer_id=INVITEE,
            fields={
                "email": f"{INVITEE}@example.com",
                "name": "Hal (referred by Ada)",
                "payment_method": "pm_card_visa",
            },
        )
        billing_services.subscription_create(
            customer_id=INVITEE,
            plan_code="pro",
            coupon_code=referral.invitee_coupon,
            trial=False,
        )
    return [
        f"Referrals: {REFERRER}'s code {code.code}; {INVITEE} signed up with it and paid "
        "(converted; rewarded when the hold ends):",
        f"  GET /api/v1/referrals/customers/{REFERRER}  (admin: Referrals)",
    ]
