from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "coupons.analytics"
    label = "analytics"  # the label names the tables and migrations: kept when nested
    verbose_name = "Coupon analytics"
