"""The portal's compliance overview: per country and message type, what a send would meet (compliance/overview.py)."""
from __future__ import annotations

import pytest

from accounts.services import SYSTEM
from accounts.tests.factories import login_verified
from compliance import geo, overview
from compliance.models import QuietHoursSetting
from compliance.quiet_hours import settings_cache_clear
from smsportal.tenancy import tenant_context

pytestmark = pytest.mark.django_db

PAGE = "/portal/compliance/"


@pytest.fixture(autouse=True)
def _fresh():
    geo.geo_cache_clear()
    settings_cache_clear()
    yield
    geo.geo_cache_clear()
    settings_cache_clear()


def _rows(tenant) -> dict[str, overview.CountryOverview]:
    with tenant_context(tenant):
        return {row.iso: row for row in overview.compliance_overview(tenant=tenant)}


def _codes(row, message_type, kind=None) -> set[str]:
    return {f.code for f in row.by_type[message_type] if kind is None or f.kind == kind}


def test_it_says_what_would_block_or_change_each_kind_of_message_per_country(world):
    rows = _rows(world.a.tenant)
    assert len(rows) >= 40
    # Nigeria is high-risk and off by default: every kind is blocked, and the owner must enable it
    assert _codes(rows["NG"], "otp", "block") >= {"destination_not_permitted"}
    assert "owner" in next(f.text for f in rows["NG"].by_type["otp"] if f.code == "destination_not_permitted")
    assert set(rows["NG"].blocked_types) == {"otp", "transactional", "marketing"}
    # China: approval, the 【】 signature and a registered template
    china = rows["CN"]
    assert "【】" in " ".join(f.text for f in china.by_type["transactional"])
    # the US: a number replaces an alphanumeric sender; marketing meets the TCPA window, OTP does not
    us = rows["US"]
    assert "sender_substituted" in _codes(us, "otp", "change")
    assert "quiet_hours" in _codes(us, "marketing", "change") and "quiet_hours" not in _codes(us, "otp")
    assert "08:00–21:00" in next(f.text for f in us.by_type["marketing"] if f.code == "quiet_hours")
    assert "quiet_hours" not in _codes(us, "transactional")
    assert not us.blocked_types
    # marketing anywhere needs the recipient's opt-in; OTP and transactional only respect opt-outs
    assert "consent_required" in _codes(rows["GB"], "marketing") and "consent_required" not in _codes(rows["GB"], "otp")


def test_it_follows_the_tenants_own_settings(world):
    # when A enables Nigeria (it then waits for approval) and applies quiet hours to transactional messages
    with tenant_context(world.a.tenant):
        geo.geo_permissions_set(tenant=world.a.tenant, changes={"NG": True}, actor=SYSTEM)
    QuietHoursSetting.unscoped.create(tenant=world.a.tenant, apply_to_transactional=True)
    rows, others = _rows(world.a.tenant), _rows(world.b.tenant)
    # then Nigeria says it waits for an account manager, and US transactional is deferred too
    assert "approval" in next(f.text for f in rows["NG"].by_type["otp"] if f.code == "destination_not_permitted")
    assert "quiet_hours" in _codes(rows["US"], "transactional", "change")
    # and B, which changed nothing, is not affected
    assert "quiet_hours" not in _codes(others["US"], "transactional")


def test_the_page_shows_it_filtered_to_every_member_who_may_view_compliance(client, world):
    login_verified(client, world.a.members["viewer"], tenant=world.a.tenant)
    page = client.get(PAGE)
    assert page.status_code == 200 and b"data-compliance-overview" in page.content
    assert b'data-country="NG"' in page.content and b"destination_not_permitted" in page.content
    assert b'data-country="GB"' in page.content
    only = client.get(PAGE, {"q": "nigeria"})
    assert b'data-country="NG"' in only.content and b'data-country="GB"' not in only.content
    blocked = client.get(PAGE, {"blocked": "1"})
    assert b'data-country="NG"' in blocked.content and b'data-country="GB"' not in blocked.content
    assert client.get(PAGE, {"q": "<script>" * 20}).status_code == 200
