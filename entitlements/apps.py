from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"
    verbose_name = "Entitlements"

    def ready(self) -> None:
        # Billing's outbox tells us about subscription and plan changes (at least once).
        from entitlements import consumers

        consumers.connect()
