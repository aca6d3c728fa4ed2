from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "referrals"
    verbose_name = "Referrals"

    def ready(self) -> None:
        from referrals import consumers

        consumers.connect()

    def demo_load(self) -> list[str]:
        """seed_demo's hook: the referrals demo, and the lines to print about it."""
        from referrals import demo

        return demo.load()
