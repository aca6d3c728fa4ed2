"""Backfill or repair the daily analytics facts: `manage.py rollup_analytics --days 30`."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from coupons.analytics import rollup


class Command(BaseCommand):
    help = "Rebuild the daily coupon facts of the last N days (today included) from the events."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=2, help="How many days back, today included (default 2)."
        )

    def handle(self, *args, days: int, **options):
        if not 1 <= days <= 3660:
            raise CommandError("--days must be between 1 and 3660.")
        today = rollup.today()
        for offset in range(days - 1, -1, -1):  # one transaction per day: short locks
            day = today - timedelta(days=offset)
            facts = rollup.rollup_days([day])
            self.stdout.write(f"{day}: {facts} coupon facts")
