from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def demo_load(self) -> list[str]:
        """seed_demo's hook (coupons' command asks every app that has one): billing's
        demo data, and the lines to print about it."""
        from billing import demo

        return demo.load()
