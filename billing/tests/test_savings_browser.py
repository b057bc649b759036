"""The public savings calculator in a real browser, signed out: type volumes, see the figures and the chart.

Headless Debian Chromium through Playwright against pytest-django's live server; console errors and CSP
violations (an inline style or script would be one) fail the test."""
from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from accounts.tests.test_portal_browser import CHROMIUM, browser_page  # noqa: F401 - the fixture
from billing import rating, savings
from billing.models import Price

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_it_estimates_savings_signed_out(transactional_db, live_server, browser_page):  # noqa: F811
    page, problems = browser_page
    savings.direct_prices_load()
    Price.unscoped.create(country="GB", price=Decimal("0.0400"), currency="EUR", effective_from="2025-01-01")
    Price.unscoped.create(country="US", price=Decimal("0.0100"), currency="EUR", effective_from="2025-01-01")
    rating.price_cache_clear()

    page.goto(f"{live_server.url}/pricing/savings/")
    page.fill("textarea[name=volumes]", "GB 10000\nUS 50000\nSG 10")
    page.select_option("select[name=message_type]", "marketing")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-savings]")

    assert page.inner_text('[data-figure="our_cost"]') == "900.0000"
    assert page.inner_text('[data-figure="direct_cost"]') == "1000.0000"
    assert page.inner_text('[data-figure="saving"]') == "100.0000"
    assert page.locator('[data-chart="savings-chart"] rect.chart-bar').count() == 4  # 2 countries x 2 sides
    assert page.locator('[data-not-comparable="SG"]').count() == 1
    page.screenshot(path="/tmp/billing-savings-public.png", full_page=True)
    assert problems == []
