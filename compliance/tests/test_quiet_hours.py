"""Quiet hours (issue 12, section 7): a marketing message outside the recipient's local window is scheduled for
the start of the next one, in the recipient's time zone (from the number; by area code in the US)."""
from datetime import UTC, datetime, time
from numbers.tests.factories import shared_senders

import pytest
import time_machine

from accounts.services import SYSTEM
from accounts.tests.api_assertions import assert_error
from compliance import quiet_hours, services
from compliance.tests.consent_helpers import opted_in
from messaging.models import Message

pytestmark = pytest.mark.django_db

NEW_YORK, LOS_ANGELES, PARIS = "+12125550123", "+14155550123", "+33612345678"


@pytest.fixture(autouse=True)
def shared(db) -> dict[str, str]:
    """Shared sender numbers where this module's alphanumeric senders go (the US, Canada, China and Brazil take
    none: sender substitution, compliance/tests/test_sender_ids.py)."""
    return shared_senders("US", "CA", "CN", "BR")


@pytest.fixture(autouse=True)
def _no_destination_limit(settings):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""


@pytest.fixture(autouse=True)
def _opted_in(world):
    """Marketing needs the recipients' opt-in (the consent check); these tests are about its timing."""
    opted_in(world.a.tenant, NEW_YORK, LOS_ANGELES, PARIS)
    opted_in(world.b.tenant, NEW_YORK)


def _send(api, side, to, *, message_type="marketing", **extra):
    return api.post("/v1/messages", {"to": to, "from": "Acme", "text": "Sale: 20% off today", "message_type": message_type,
                                     **extra}, format="json", **side.auth)


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("to", "sent_at", "deferred_to"), [
    # New York (EST, UTC-5), Tuesday 21:30 local: TCPA's window closed at 21:00; opens again 08:00 local.
    (NEW_YORK, _utc(2030, 1, 9, 2, 30), _utc(2030, 1, 9, 13, 0)),
    # Los Angeles (PST, UTC-8), the same area-code rule in another of the US's zones: 06:00 local -> 08:00.
    (LOS_ANGELES, _utc(2030, 1, 8, 14, 0), _utc(2030, 1, 8, 16, 0)),
    # Paris (CET, UTC+1), Saturday 20:30: closed at 20:00 and all Sunday; Monday 08:00 local.
    (PARIS, _utc(2030, 1, 12, 19, 30), _utc(2030, 1, 14, 7, 0)),
])
def test_it_defers_a_marketing_message_to_the_next_local_window(world, api, to, sent_at, deferred_to):
    # given a moment outside the recipient's legal window
    with time_machine.travel(sent_at, tick=False):
        # when A sends a marketing message
        response = _send(api, world.a, to)
    # then it is accepted as scheduled for the window's start, in UTC, with the reason
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["scheduled_reason"]) == ("scheduled", "quiet_hours")
    assert body["scheduled_at"] == deferred_to.isoformat().replace("+00:00", "Z")
    stored = Message.unscoped.get(public_id=body["id"])
    assert (stored.status, stored.scheduled_reason, stored.scheduled_at) == ("scheduled", "quiet_hours", deferred_to)


def test_it_sends_at_once_inside_the_window_and_never_defers_otp(world, api):
    # given 03:00 in New York on a Tuesday (outside), then 15:00 (inside)
    with time_machine.travel(_utc(2030, 1, 8, 8, 0), tick=False):
        otp = _send(api, world.a, NEW_YORK, message_type="otp").json()
        transactional = _send(api, world.a, NEW_YORK, message_type="transactional").json()
    with time_machine.travel(_utc(2030, 1, 8, 20, 0), tick=False):
        inside = _send(api, world.a, NEW_YORK).json()
    # then the marketing message inside goes now, and OTP and transactional go now even at night
    assert [m["status"] for m in (inside, otp, transactional)] == ["queued", "queued", "queued"]
    assert [m["scheduled_reason"] for m in (inside, otp, transactional)] == [None, None, None]


def test_it_narrows_the_window_by_the_tenant_setting_and_can_cover_transactional(world, api):
    # given A's own window 10:00-20:00, applied to transactional too
    services.quiet_hours_set(tenant=world.a.tenant, window_start=time(10), window_end=time(20), days_off=[],
                             apply_to_transactional=True, actor=SYSTEM)
    # when A sends at 08:30 in New York (inside TCPA's window, outside A's)
    with time_machine.travel(_utc(2030, 1, 8, 13, 30), tick=False):
        marketing = _send(api, world.a, NEW_YORK).json()
        transactional = _send(api, world.a, NEW_YORK, message_type="transactional").json()
        other_tenant = _send(api, world.b, NEW_YORK).json()
    # then A's messages wait for 10:00 local; B (no setting) sends at once
    assert marketing["scheduled_at"] == transactional["scheduled_at"] == "2030-01-08T15:00:00Z"
    assert other_tenant["status"] == "queued"


def test_it_cannot_widen_the_legal_window(world, api):
    # given A would send until 23:00
    services.quiet_hours_set(tenant=world.a.tenant, window_start=time(7), window_end=time(23), days_off=[],
                             apply_to_transactional=False, actor=SYSTEM)
    # when A sends at 22:00 in New York
    with time_machine.travel(_utc(2030, 1, 9, 3, 0), tick=False):
        body = _send(api, world.a, NEW_YORK).json()
    # then TCPA's 21:00 still holds: tomorrow 08:00 local
    assert (body["status"], body["scheduled_at"]) == ("scheduled", "2030-01-09T13:00:00Z")


def test_it_skips_a_french_public_holiday(world, api):
    # given 30 April 2030, 20:30 in Paris (CEST, UTC+2); 1 May is Labour Day
    with time_machine.travel(_utc(2030, 4, 30, 18, 30), tick=False):
        body = _send(api, world.a, PARIS).json()
    # then it waits for 2 May, 08:00 local
    assert body["scheduled_at"] == "2030-05-02T06:00:00Z"


def test_it_takes_the_callers_time_zone_over_the_numbers(world, api):
    # given 06:00 in New York (05:00 in Chicago): a New York number the caller says is in Chicago
    with time_machine.travel(_utc(2030, 1, 8, 11, 0), tick=False):
        body = _send(api, world.a, NEW_YORK, timezone="America/Chicago").json()
    # then it waits for 08:00 in Chicago, not New York's 08:00
    assert body["scheduled_at"] == "2030-01-08T14:00:00Z"


def test_it_refuses_a_time_zone_that_is_not_iana(world, api):
    response = _send(api, world.a, NEW_YORK, timezone="Mars/Olympus")
    assert_error(response, 400, "invalid_timezone", field="timezone")
    assert not Message.unscoped.filter(tenant=world.a.tenant, to=NEW_YORK).exists()


def test_it_takes_the_most_restrictive_zone_when_the_number_spans_several():
    # given an Australian mobile (phonenumbers: every zone of the country, Perth to Lord Howe, and its islands)
    country, zones = quiet_hours.number_place("+61412345678")
    assert country == "AU" and {"Australia/Perth", "Australia/Sydney"} <= set(zones)
    # when a message is meant for Wednesday 09:30 in Sydney (06:30 in Perth)
    later = quiet_hours.next_allowed(moment=_utc(2030, 1, 8, 22, 30), country=country, zones=zones,
                                     window=quiet_hours.NO_SETTING)
    # then it waits until 09:00 in the westernmost zone (Cocos, UTC+6:30), still inside Sydney's window
    assert later == _utc(2030, 1, 9, 2, 30)

