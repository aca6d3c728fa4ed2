"""The site facts get the confirmed orders, each order once (a stacked order has one
confirm event per coupon): the all-coupons totals read these instead of summing the
coupon facts.

The new columns of the days already rolled up are filled from the raw events here, with
the roll-up's own definition (analytics.rollup.aggregate_orders, written out in SQL so
this migration does not depend on later code). A day whose confirm events were deleted
since (old events may be) keeps what the page showed before: the sums of its coupon
facts.
"""

from django.conf import settings
from django.db import migrations, models

BACKFILL = """
WITH per_order AS (
    SELECT (occurred_at AT TIME ZONE %(tz)s)::date AS day, currency,
           MAX(order_value_minor) AS value, MAX(customer_id) AS customer,
           BOOL_OR(new_customer) AS new
    FROM analytics_couponevent
    WHERE kind = 'confirm' AND coupon_id IS NOT NULL AND currency <> ''
    GROUP BY 1, 2, order_id, CASE WHEN order_id = '' THEN id END
), from_events AS (
    SELECT day, currency, COUNT(*) AS orders, COALESCE(SUM(value), 0) AS value,
           COUNT(DISTINCT customer) FILTER (WHERE new AND customer <> '') AS new_customers
    FROM per_order GROUP BY day, currency
), from_facts AS (
    SELECT day, currency, SUM(confirms) AS orders, SUM(order_value_minor) AS value,
           SUM(new_customers) AS new_customers
    FROM analytics_dailycouponfact WHERE currency <> ''
    GROUP BY day, currency HAVING SUM(confirms) > 0
)
INSERT INTO analytics_dailysitefact
    (day, currency, carts_without_discount, order_value_without_discount_minor,
     orders, order_value_minor, new_customers, rolled_up_at)
SELECT f.day, f.currency, 0, 0, COALESCE(e.orders, f.orders), COALESCE(e.value, f.value),
       COALESCE(e.new_customers, f.new_customers), NOW()
FROM from_facts f LEFT JOIN from_events e USING (day, currency)
ON CONFLICT (day, currency) DO UPDATE
    SET orders = EXCLUDED.orders, order_value_minor = EXCLUDED.order_value_minor,
        new_customers = EXCLUDED.new_customers
"""


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(BACKFILL, {"tz": settings.TIME_ZONE})


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_analytics_verbose_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='dailysitefact',
            name='new_customers',
            field=models.PositiveIntegerField(default=0, help_text='Distinct confirming customers who were new, over all coupons.'),
        ),
        migrations.AddField(
            model_name='dailysitefact',
            name='order_value_minor',
            field=models.BigIntegerField(default=0, help_text='Their subtotals, each order once.'),
        ),
        migrations.AddField(
            model_name='dailysitefact',
            name='orders',
            field=models.PositiveIntegerField(default=0, help_text='Distinct confirmed orders with at least one coupon.'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
