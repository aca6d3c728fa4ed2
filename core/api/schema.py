"""OpenAPI pieces every app's views share: the error body's schema, the Idempotency-Key
header, and drf-spectacular extensions describing our authentication classes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Replays return the first response; the same key with another body is 409.",
)
OPTIONAL_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Optional: replays return the first response.",
)


class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField()  # type: ignore[assignment] # a declared field

    class Meta:
        ref_name = "ErrorDetail"


class ErrorOut(serializers.Serializer):
    """The API.md error body: {"error": {"code", "message", "fields"}}."""

    error = ErrorDetailOut()

    class Meta:
        ref_name = "Error"


# The statuses any authenticated endpoint may answer with the error body.
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut, 503: ErrorOut}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` (scopes: storefront, admin)",
        }


class CustomerJWTScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.CustomerJWTAuthentication"
    name = "CustomerJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "End-customer token; `sub` is the customer id.",
        }
