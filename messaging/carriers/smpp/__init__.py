"""The SMPP 3.4 client (ESME) of carrier connectors, on smpplib: one SmppSession per bind."""
from __future__ import annotations

from messaging.carriers.smpp.receipts import ReceiptParking, receipt_parse
from messaging.carriers.smpp.session import BIND_REFUSED, BOUND, CLOSED, CONNECTING, DISCONNECTED, SmppSession
from messaging.carriers.smpp.settings import SessionSettings

__all__ = ["BIND_REFUSED", "BOUND", "CLOSED", "CONNECTING", "DISCONNECTED", "ReceiptParking", "SessionSettings",
           "SmppSession", "receipt_parse"]
