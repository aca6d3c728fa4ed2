"""Data: redemptions stored before issue 6 kept the shopper context raw (IP, email, device,
card fingerprint). Replace each with its hashed form (abuse/identity.py), as new
redemptions are stored; the raw values are gone afterwards."""

from django.db import migrations


def forwards(apps, schema_editor):
    from coupons.abuse.identity import digests, stored_context

    Redemption = apps.get_model("coupons", "Redemption")
    rows = Redemption.objects.exclude(context={}).only("pk", "context")
    batch = []
    for row in rows.iterator(chunk_size=2000):
        row.context = stored_context(row.context, digests(row.context))
        batch.append(row)
        if len(batch) >= 2000:
            Redemption.objects.bulk_update(batch, ["context"])
            batch = []
    if batch:
        Redemption.objects.bulk_update(batch, ["context"])


class Migration(migrations.Migration):
    dependencies = [
        ("abuse", "0002_marketing_group"),
        ("coupons", "0010_abuse_budget_history"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
