from django.apps import AppConfig


class BillingWebhooksConfig(AppConfig):
    name = "billing.webhooks"
    label = "billing_webhooks"  # the label names the tables and migrations: kept when nested
    verbose_name = "Billing webhooks"
