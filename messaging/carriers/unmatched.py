"""HTTP receipts that came before their carrier ids were stored: how long we ask the carrier to send them again.

An HTTP carrier can post a receipt while the dispatch that submitted the message is still recording its
carrier ids (the ids of a carrier group are stored once the whole group has answered). Such a receipt
matches no message yet. Instead of dropping it, the receipts view answers 503 (`receipt_unmatched`,
Retry-After) so the carrier sends it again, for CARRIER_RECEIPT_WAIT_SECONDS (600) from the first time
that carrier id was seen; after that it is answered 204 and logged as given up. The first-seen time is a
cache key per carrier and id, shared by every web process.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("smsportal.carriers")
RETRY_AFTER_SECONDS = 5


def receipts_waiting(*, carrier: str, carrier_message_ids: Iterable[str]) -> list[str]:
    """The unmatched carrier ids whose carrier should still send the receipt again (first seen within
    CARRIER_RECEIPT_WAIT_SECONDS). The others are logged and given up."""
    wait = settings.CARRIER_RECEIPT_WAIT_SECONDS
    now = time.time()
    waiting = []
    for carrier_message_id in carrier_message_ids:
        key = _key(carrier, carrier_message_id)
        # add: only the first sighting sets the time; the key outlives the wait so a late retry is not a new one
        cache.add(key, now, timeout=wait * 6)
        first_seen = cache.get(key, now)
        if now - first_seen < wait:
            waiting.append(carrier_message_id)
        else:
            logger.warning("receipt from %s for %s given up: no message has that id after %.0f s", carrier,
                           carrier_message_id, now - first_seen,
                           extra={"event": "receipt.unmatched", "carrier": carrier,
                                  "carrier_message_id": carrier_message_id})
    return waiting


def _key(carrier: str, carrier_message_id: str) -> str:
    digest = hashlib.sha256(carrier_message_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"receipt-unmatched:{carrier}:{digest}"
