from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "coupons.campaigns"
    label = "campaigns"  # the label names the tables and migrations: kept when nested
    verbose_name = "Flash-sale campaigns"
