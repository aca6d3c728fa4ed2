from django.urls import path

from billing.webhooks import views

urlpatterns = [
    path(
        "billing/webhooks/stripe", views.StripeWebhookApi.as_view(), name="billing-webhooks-stripe"
    ),
]
