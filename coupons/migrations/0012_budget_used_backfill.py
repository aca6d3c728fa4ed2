"""Data: reservations and confirmed redemptions made before the budget guard existed hold
their discount too, so budget_used starts as their sum (else giving one back would take
the counter below zero)."""

from django.db import migrations

BACKFILL = """
UPDATE coupons_coupon c
   SET budget_used_minor = COALESCE((
       SELECT sum(r.discount_minor + r.shipping_discount_minor) FROM coupons_redemption r
        WHERE r.coupon_id = c.id AND r.status IN ('reserved', 'confirmed')), 0)
"""


class Migration(migrations.Migration):
    dependencies = [("coupons", "0011_coupon_db_defaults")]
    operations = [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]
