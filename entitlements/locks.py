"""Row locks of entitlements, in one order: a usage row, then the customer's account
row (taken last, by cache.changed, held to the commit)."""

from __future__ import annotations

from django.db import connection

from entitlements.models import Feature, Usage


def usage_lock(customer_id: str, feature: Feature) -> Usage:
    """The customer's usage row of a limit feature, created on first use, locked."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO entitlements_usage (customer_id, feature_id, used, updated_at) "
            "VALUES (%s, %s, 0, now()) ON CONFLICT (customer_id, feature_id) DO NOTHING",
            [customer_id, feature.pk],
        )
    return Usage.objects.select_for_update().get(customer_id=customer_id, feature=feature)
