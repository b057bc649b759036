"""Step 4 with billing: rating registered in the pipeline's price step (billing/rating.py; docs/billing.md).

Messaging sits above billing, so it registers billing's service functions here; billing never imports
the pipeline. Rating reads only the price lists in process memory: it adds no round trip to a send.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from accounts.services import ApiKeyMode
from billing import rating
from messaging.accept import registry

if TYPE_CHECKING:
    from messaging.accept.steps import AcceptContext
    from messaging.services import PreparedMessage


def billing_price(*, context: AcceptContext, message: PreparedMessage, reserve: bool) -> registry.Price | None:
    """Segments times the unit price of the destination and type; a test key's is shown, `billed` false.
    Raises NoPriceForDestination (422) when no list prices the destination."""
    if not settings.BILLING_ENABLED:
        return None
    rate = rating.message_rate(tenant_id=context.tenant.pk, to=message.to, message_type=message.message_type)
    return registry.Price(amount=rate.unit * message.analysis.segment_count, currency=rate.currency,
                          billed=context.mode == ApiKeyMode.LIVE)


registry.price_step(billing_price, writes=False)
