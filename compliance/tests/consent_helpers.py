"""Test helper: recipients that opted in (tenant-wide), so marketing to them passes the consent check."""
from __future__ import annotations

from compliance import consent_services


def opted_in(tenant, *phones: str) -> None:
    for phone in phones:
        consent_services.consent_record(tenant=tenant, phone=phone, status="opted_in", source="api",
                                        proof=consent_services.Proof(text="Offers by SMS", version="test"))
