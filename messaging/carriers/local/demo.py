"""make run's local carriers as seed_demo loads them and local_carriers runs them: the same ports and secrets.

The SMSC's credentials are fixed (system_id `local`, password `localpw`: loopback only). The HTTP carrier's
receipt secret and bearer token are derived from SECRET_KEY, so that the two commands agree without storing
them anywhere else. A destination ending in UNDELIVERABLE_SUFFIX comes back undelivered from either carrier.
"""
from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

SMPP_CARRIER, HTTP_CARRIER = "local-smpp", "local-http"
SMPP_SYSTEM_ID, SMPP_PASSWORD = "local", "localpw"  # noqa: S105 - a loopback demo SMSC's own
UNDELIVERABLE_SUFFIX = "999"
# SMPP is the cheaper route of each prefix, so it is chosen; the HTTP carrier is the failover.
SMPP_COST, HTTP_COST, CURRENCY = "0.0050", "0.0090", "EUR"
COUNTRIES = {"1": "US", "44": "GB", "49": "DE", "33": "FR", "86": "CN", "91": "IN", "55": "BR"}


def http_carrier_secret(purpose: str) -> str:
    """The local HTTP carrier's `receipt` secret or bearer `token`, the same in every process of one SECRET_KEY."""
    return hmac.new(settings.SECRET_KEY.encode(), f"local-http-carrier {purpose}".encode(), hashlib.sha256).hexdigest()


def carriers_document() -> dict:
    """The two carriers and their routes, as a carriers file (messaging/routing/loader.py loads it)."""
    smpp = {"name": SMPP_CARRIER, "kind": "smpp", "host": "127.0.0.1", "port": settings.LOCAL_SMPP_PORT,
            "system_id": SMPP_SYSTEM_ID, "password": SMPP_PASSWORD, "window": 10, "sessions": 1}
    http = {"name": HTTP_CARRIER, "kind": "http", "preset": "generic",
            "url": f"http://127.0.0.1:{settings.LOCAL_HTTP_CARRIER_PORT}/send", "method": "POST",
            "allow_private_network": True,  # the SSRF guard lets this carrier's URL be on loopback
            "auth": {"type": "bearer", "token": http_carrier_secret("token")},
            "body": {"format": "json", "fields": {"to": "{to}", "from": "{from}", "text": "{text}", "ref": "{id}",
                                                  "dlr": "{receipt_url}"}},
            "response": {"message_id": "/id"},
            "receipt": {"message_id": "/id", "status": "/status",
                        "map": {"DELIVERED": "delivered", "FAILED": "undelivered"},
                        "secret": http_carrier_secret("receipt")}}
    routes = [{"carrier": carrier, "prefix": prefix, "country": country, "cost": cost, "currency": CURRENCY}
              for prefix, country in COUNTRIES.items()
              for carrier, cost in ((SMPP_CARRIER, SMPP_COST), (HTTP_CARRIER, HTTP_COST))]
    return {"carriers": [smpp, http], "routes": routes}
