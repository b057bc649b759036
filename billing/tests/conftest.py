"""Billing's tests run with billing on (the test settings turn it off for every other app)."""
from __future__ import annotations

import pytest

from billing import rating


@pytest.fixture
def billed(world, settings):
    """The two-tenant world (built without billing: its messages have no price), then billing on."""
    settings.BILLING_ENABLED = True
    rating.price_cache_clear()
    yield world
    rating.price_cache_clear()
