"""seed_demo's entitlements: the features the demo plans name (billing's demo gives
Free 3 projects, Pro 50, Team 500; SSO on Team; API calls per month), and a free
customer with two projects and a 14-day SSO grant."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from entitlements import services
from entitlements.models import Feature, Grant

FEATURES = (
    ("projects", "Projects", "limit"),
    ("sso", "Single sign-on", "boolean"),
    ("api_calls", "API calls per billing period", "metered"),
)
CUSTOMER = "demo-gus"


def load() -> list[str]:
    for key, name, kind in FEATURES:
        if not Feature.objects.filter(key=key).exists():
            services.feature_create(key=key, name=name, type=kind)
    for project in ("demo-project-1", "demo-project-2"):
        services.reserve(customer_id=CUSTOMER, feature_key="projects", resource_id=project)
    if not Grant.objects.filter(customer_id=CUSTOMER).exists():
        services.grant_create(
            customer_id=CUSTOMER,
            feature_key="sso",
            value=True,
            expires_at=timezone.now() + timedelta(days=14),
            reason="demo: SSO trial for 14 days",
            created_by="seed_demo",
        )
    return [
        "Entitlements: features projects / sso / api_calls; "
        f"customer {CUSTOMER} on Free holds 2 of 3 projects and SSO granted for 14 days:",
        f"  GET /api/v1/entitlements/{CUSTOMER}  (admin: Entitlements > Customer entitlements)",
    ]
