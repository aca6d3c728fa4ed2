from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"
    verbose_name = "Entitlements"

    def ready(self) -> None:
        # Billing's outbox tells us about subscription and plan changes (at least once).
        from entitlements import consumers

        consumers.connect()

    def demo_load(self) -> list[str]:
        """seed_demo's hook: entitlements' demo data, and the lines to print about it."""
        from entitlements import demo

        return demo.load()
