from django.apps import AppConfig


class AbuseConfig(AppConfig):
    name = "coupons.abuse"
    label = "abuse"  # the label names the tables and migrations: kept when nested
    verbose_name = "Abuse protection"
