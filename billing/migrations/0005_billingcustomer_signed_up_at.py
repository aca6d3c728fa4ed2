"""BillingCustomer.signed_up_at: the signup on the customer's clock (docs/decisions.md).
The column; 0006 fills it for the rows that existed before."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_subscription_trial_end_idx"),
    ]

    operations = [
        migrations.AddField(
            model_name="billingcustomer",
            name="signed_up_at",
            field=models.DateTimeField(
                db_index=True,
                default=django.utils.timezone.now,
                editable=False,
                help_text="On the customer's clock (a test clock's time for a customer on one).",
            ),
        ),
    ]
