"""The platform's own deployment checks (`manage.py check --deploy`), beside Django's."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - names to refuse, not to bind


@register(Tags.security, deploy=True)
def public_base_url_check(app_configs, **kwargs) -> list[Warning]:
    """PUBLIC_BASE_URL builds the receipt and inbound URLs handed to carriers (and Twilio signs that URL): in
    production it must be our public HTTPS address, not the development default."""
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    if parts.scheme == "https" and parts.hostname and parts.hostname not in LOOPBACK:
        return []
    return [Warning(f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}: carriers would send receipts and inbound "
                    "messages to an address they cannot reach, or over plain HTTP.",
                    hint="Set PUBLIC_BASE_URL to the platform's public https:// address.", id="smsportal.W001")]
