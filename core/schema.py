"""drf-spectacular extensions: describe our authentication classes in the schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
