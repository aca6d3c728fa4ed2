"""POST /api/v1/billing/webhooks/stripe (API.md "Provider webhooks"): no API key, the
`Stripe-Signature` header is the authentication. The signature is checked on the raw
body, as the provider signed it, before anything is read from it."""

from __future__ import annotations

import json

import stripe
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.webhooks import services
from core.api.schema import ErrorOut
from core.errors import Invalid

# Stripe's own default: a signature older than this is refused (replayed deliveries).
TOLERANCE_SECONDS = 300


class WebhookReceivedOut(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="The event was stored before: nothing done.")

    class Meta:
        ref_name = "WebhookReceived"


def _bad_signature(message: str) -> Invalid:
    return Invalid("invalid_signature", message)


def verified_event(body: bytes, signature: str) -> dict:
    """The event a Stripe-signed body carries (a JSON object), or `Invalid` (400)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise _bad_signature("Webhook signatures cannot be verified: no secret is configured.")
    if not signature:
        raise _bad_signature("The Stripe-Signature header is missing.")
    try:
        stripe.Webhook.construct_event(body, signature, secret, tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        raise _bad_signature(
            "The Stripe-Signature header does not verify or is older than 5 minutes."
        ) from None
    except (ValueError, AttributeError, TypeError):
        # Not UTF-8, not JSON, or JSON but not an object (the SDK reads it as one).
        raise Invalid(
            "invalid_request",
            "The body is not a JSON object.",
            fields={"non_field_errors": ["The body must be a JSON object."]},
        ) from None
    # Read again as plain JSON (the SDK's objects are not what the payload column stores).
    return json.loads(body.decode("utf-8"))


class StripeWebhookApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="billing_webhooks_stripe",
        request=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter(
                "Stripe-Signature",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description='`t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">` '
                "with STRIPE_WEBHOOK_SECRET.",
            )
        ],
        responses={200: WebhookReceivedOut, 400: ErrorOut, 503: ErrorOut},
        auth=[],
        tags=["billing"],
        description="Stripe events, verified by signature, each stored and processed "
        "once (docs/billing-webhooks.md). No API key.",
    )
    def post(self, request):
        data = verified_event(request.body, request.headers.get("Stripe-Signature", ""))
        received = services.event_receive(services.event_parse(data))
        return Response({"received": True, "duplicate": received.duplicate})
