"""OpenAPI description of our API-key authentication (drf-spectacular extension)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sk_live_… / sk_test_…",
            "description": "An API key from the portal: `Authorization: Bearer sk_test_…`.",
        }
