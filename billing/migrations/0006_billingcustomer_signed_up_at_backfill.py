"""Data: BillingCustomer.signed_up_at for the customers that existed before 0005 (which
gave them all the migration's moment).

A wall-clock customer signed up when its row was created (`created_at`, exact). For a
customer on a test clock the clock's time at its creation was not recorded; the latest
moment its history allows is taken: the earliest of the clock's time now and its first
subscription and invoice (both dated on the clock; a clock never goes back, so the
signup was at or before each of them). Exact for the usual story (created on the clock
and subscribed before the clock moved on); otherwise a little late, never before the
customer was on the clock.

One statement, each row updated once (a second UPDATE of rows this transaction already
updated would queue deferred foreign-key checks)."""

from django.db import migrations

BACKFILL = """
UPDATE billing_billingcustomer c
   SET signed_up_at = CASE
       WHEN c.test_clock_id IS NULL THEN c.created_at
       ELSE LEAST(
           (SELECT t.frozen_time FROM billing_testclock t WHERE t.id = c.test_clock_id),
           (SELECT min(s.created_at) FROM billing_subscription s WHERE s.customer_id = c.id),
           (SELECT min(i.created_at) FROM billing_invoice i WHERE i.customer_id = c.id))
       END
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_billingcustomer_signed_up_at")]
    operations = [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]
