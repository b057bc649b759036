"""Content-Security-Policy for the portal and admin: no inline script, no framing."""

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Swagger UI and Django admin ship inline styles; they keep a looser style-src.
        if request.path.startswith(("/v1/docs", "/admin/")):
            response.setdefault("Content-Security-Policy", POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"))
        else:
            response.setdefault("Content-Security-Policy", POLICY)
        return response
