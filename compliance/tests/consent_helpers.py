"""Test helper: recipients that opted in (tenant-wide), so marketing to them passes the consent check."""
from __future__ import annotations

from compliance import consent_services


def opted_in(tenant, *phones: str) -> None:
    for phone in phones:
        consent_services.consent_record(tenant=tenant, phone=phone, status="opted_in", source="api",
                                        proof=consent_services.Proof(text="Offers by SMS", version="test"))


def consent_rows(world) -> None:
    """A consent record and a suppression for each side of the world (side.extra["consent"], ["suppression"]), for
    the tests that walk every route. Not in World.build: a tenant with an empty ledger costs the send no query,
    and the send pipeline's statement-count tests count on it."""
    for side, phone in ((world.a, "+14155550181"), (world.b, "+14155550182")):
        side.extra["consent"] = consent_services.consent_record(tenant=side.tenant, phone=phone, status="opted_in",
                                                                source="api")
        side.extra["suppression"] = consent_services.suppression_add(tenant=side.tenant, phone=phone,
                                                                     reason=f"{side.tenant.slug} test")
