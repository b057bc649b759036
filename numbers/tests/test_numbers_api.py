"""/v1/numbers: the available inventory, assignments and leases (scope `numbers`)."""
from __future__ import annotations

from datetime import timedelta
from numbers.models import NumberAssignment, NumberEvent, NumberLease, NumberStatus, NumberType, PhoneNumber
from numbers.tests.factories import stock

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key

pytestmark = pytest.mark.django_db

URL = "/v1/numbers"


def _post(api, auth, url, body):
    return api.post(url, body, format="json", **auth)


def _rows():
    return (NumberAssignment.unscoped.count(), NumberLease.unscoped.count(), NumberEvent.unscoped.count(),
            sorted(PhoneNumber.objects.values_list("number", "status")))


# --- available inventory ------------------------------------------------------------------------


def test_it_lists_available_numbers_with_filters_and_price_not_cost(world, api):
    # given US and GB mobile numbers, one of them rented
    us = stock(3)
    gb = stock(2, country="GB")
    _post(api, world.a.auth, URL, {"number": us[0].number})
    # when listing GB mobiles with sms
    response = api.get(f"{URL}/available?country=gb&type=mobile&capability=sms", **world.b.auth)
    # then only the available GB numbers show, with a string price and no cost
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["number"] for r in results] == sorted(n.number for n in gb)
    assert set(results[0]) == {"id", "number", "country", "type", "capabilities", "monthly_price", "price"}
    assert results[0]["price"] is None  # no number price yet (billing/tests/test_number_charges.py prices them)
    assert results[0]["monthly_price"] == "1.0000" and results[0]["capabilities"] == ["sms", "voice"]
    assert "monthly_cost" not in response.content.decode()
    # and the rented US number is not offered
    listed = [r["number"] for r in api.get(f"{URL}/available?country=US", **world.b.auth).json()["results"]]
    assert listed == sorted(n.number for n in us[1:])


def test_it_filters_available_numbers_by_digits_and_caps_the_page(world, api):
    # given 60 US numbers
    numbers = stock(60)
    tail = numbers[7].number[-4:]
    # when filtering by digits the number contains
    found = api.get(f"{URL}/available?contains={tail}", **world.a.auth).json()["results"]
    # then the number is among those found, and every result contains them
    assert numbers[7].number in [r["number"] for r in found] and all(tail in r["number"] for r in found)
    # and a page has at most 50 numbers, even when more are asked for, with a cursor to the rest
    page = api.get(f"{URL}/available?limit=500", **world.a.auth).json()
    assert len(page["results"]) == 50 and page["next"]
    rest = api.get(page["next"], **world.a.auth).json()["results"]
    assert len(rest) == 10


@pytest.mark.parametrize(("query", "field"), [
    ("type=pager", "type"), ("capability=fax", "capability"), ("country=GBR", "country"), ("contains=7a", "contains"),
])
def test_it_refuses_bad_filters_by_field(world, api, query, field):
    error = assert_error(api.get(f"{URL}/available?{query}", **world.a.auth), 400, _code_for(field), field=field)
    assert error["message"]


def _code_for(field: str) -> str:
    return "invalid_choice" if field in ("type", "capability") else "invalid"


# --- assignments --------------------------------------------------------------------------------


def test_it_rents_a_given_number_and_lists_it_then_releases_it(world, api):
    # given an available number
    number = stock(2)[1]
    # when tenant A rents it
    response = _post(api, world.a.auth, URL, {"number": number.number})
    # then 201 with the assignment
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == number.public_id and body["number"] == number.number
    assert body["country"] == "US" and body["type"] == "mobile" and body["started_at"]
    assert body["assignment_id"].startswith("asg_")
    number.refresh_from_db()
    assert number.status == NumberStatus.ASSIGNED and number.holder == world.a.tenant
    # and it is listed among A's numbers, with no expiry
    held = {r["id"]: r for r in api.get(URL, **world.a.auth).json()["results"]}
    assert held[number.public_id]["holding"] == "assignment"
    assert held[number.public_id]["holding_id"] == body["assignment_id"]
    assert held[number.public_id]["expires_at"] is None
    # but not among B's
    assert number.public_id not in api.get(URL, **world.b.auth).content.decode()
    # when A releases it
    response = api.delete(f"{URL}/{number.public_id}", **world.a.auth)
    # then 204, the number is quarantined and no longer listed
    assert response.status_code == 204
    number.refresh_from_db()
    assert number.status == NumberStatus.QUARANTINED and number.holder is None
    assert number.public_id not in api.get(URL, **world.a.auth).content.decode()
    # and releasing it again is a 404 (A no longer holds it)
    assert_error(api.delete(f"{URL}/{number.public_id}", **world.a.auth), 404, "not_found")


def test_it_rents_any_number_matching_filters(world, api):
    # given US and GB mobiles
    stock(2)
    gb = stock(2, country="GB")
    target = gb[1].number
    # when renting a GB number containing the last digits of one of them
    response = _post(api, world.a.auth, URL, {"country": "gb", "type": "mobile", "contains": target[-4:]})
    # then that number is rented
    assert response.status_code == 201, response.content
    assert response.json()["number"] == target


def test_it_refuses_a_number_that_is_not_available(world, api):
    # given a number rented by B, and one that is not in the inventory
    number = stock(1)[0]
    assert _post(api, world.b.auth, URL, {"number": number.number}).status_code == 201
    before = _rows()
    # when A asks for either; then 409 number_not_available and nothing changes
    assert_error(_post(api, world.a.auth, URL, {"number": number.number}), 409, "number_not_available")
    assert_error(_post(api, world.a.auth, URL, {"number": "+15550000000"}), 409, "number_not_available",
                 field="number")
    assert _rows() == before


def test_no_matching_number_is_409_with_nothing_created(world, api):
    # given only US numbers
    stock(2)
    before = _rows()
    # when renting or leasing a GB number; then 409 no_number_available
    assert_error(_post(api, world.a.auth, URL, {"country": "GB"}), 409, "no_number_available")
    assert_error(_post(api, world.a.auth, f"{URL}/leases", {"country": "GB", "ttl_seconds": 900}), 409,
                 "no_number_available")
    # and nothing was written
    assert _rows() == before


@pytest.mark.parametrize(("body", "code", "field"), [
    ({}, "number_or_filters_required", None),
    ({"number": "+15550000000", "country": "US"}, "number_and_filters", "number"),
    ({"type": "pager"}, "invalid_choice", "type"),
    ({"country": "USA"}, "invalid", "country"),
])
def test_it_refuses_invalid_rent_requests(world, api, body, code, field):
    stock(1)
    before = _rows()
    assert_error(_post(api, world.a.auth, URL, body), 400, code, field=field)
    assert _rows() == before


# --- leases -------------------------------------------------------------------------------------


def test_lease_then_extend_then_release(world, api):
    # given an available US mobile
    number = stock(1)[0]
    # when tenant A leases a US number for 15 minutes
    response = _post(api, world.a.auth, f"{URL}/leases",
                     {"country": "US", "ttl_seconds": 900, "type": "mobile", "callback_url": "https://example.com/cb"})
    # then 201 with the lease id, the E.164 number and its times
    assert response.status_code == 201, response.content
    lease = response.json()
    assert lease["id"].startswith("lse_") and lease["number"] == number.number and lease["status"] == "active"
    started, expires = parse_datetime(lease["started_at"]), parse_datetime(lease["expires_at"])
    assert expires - started == timedelta(seconds=900)
    # and GET /v1/numbers shows it with its expiry
    held = api.get(URL, **world.a.auth).json()["results"]
    entry = next(r for r in held if r["number"] == number.number)
    assert entry["holding"] == "lease" and entry["holding_id"] == lease["id"]
    assert parse_datetime(entry["expires_at"]) == expires
    # and GET of the lease answers it
    assert api.get(f"{URL}/leases/{lease['id']}", **world.a.auth).json()["expires_at"] == lease["expires_at"]
    # when extended by 10 minutes
    response = _post(api, world.a.auth, f"{URL}/leases/{lease['id']}/extend", {"ttl_seconds": 600})
    # then it ends 10 minutes later
    assert response.status_code == 200, response.content
    assert parse_datetime(response.json()["expires_at"]) == expires + timedelta(seconds=600)
    # when released
    response = api.delete(f"{URL}/leases/{lease['id']}", **world.a.auth)
    # then it has ended, the number is quarantined and no longer listed
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "released" and response.json()["released_at"]
    number.refresh_from_db()
    assert number.status == NumberStatus.QUARANTINED
    assert number.number not in api.get(URL, **world.a.auth).content.decode()
    # and an ended lease can no longer be extended; releasing it again changes nothing
    assert_error(_post(api, world.a.auth, f"{URL}/leases/{lease['id']}/extend", {"ttl_seconds": 600}), 409,
                 "lease_ended")
    assert api.delete(f"{URL}/leases/{lease['id']}", **world.a.auth).status_code == 200


def test_a_leased_number_is_released_through_its_number_id(world, api):
    number = stock(1)[0]
    lease_id = _post(api, world.a.auth, f"{URL}/leases", {"country": "US", "ttl_seconds": 900}).json()["id"]
    assert api.delete(f"{URL}/{number.public_id}", **world.a.auth).status_code == 204
    assert NumberLease.unscoped.get(public_id=lease_id).released_at is not None


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"ttl_seconds": 900}, "required", "country"),
    ({"country": "US"}, "required", "ttl_seconds"),
    ({"country": "US", "ttl_seconds": 30}, "invalid_ttl", "ttl_seconds"),
    ({"country": "US", "ttl_seconds": 31 * 86400}, "invalid_ttl", "ttl_seconds"),
    ({"country": "US", "ttl_seconds": "soon"}, "invalid", "ttl_seconds"),
    ({"country": "US", "ttl_seconds": 900, "type": "pager"}, "invalid_choice", "type"),
    ({"country": "US", "ttl_seconds": 900, "callback_url": "ftp://example.com/cb"}, "invalid_callback_url",
     "callback_url"),
])
def test_it_refuses_invalid_lease_requests(world, api, body, code, field):
    stock(1)
    before = _rows()
    assert_error(_post(api, world.a.auth, f"{URL}/leases", body), 400, code, field=field)
    assert _rows() == before


def test_an_extension_beyond_30_days_is_refused(world, api):
    stock(1)
    lease_id = _post(api, world.a.auth, f"{URL}/leases", {"country": "US", "ttl_seconds": 29 * 86400}).json()["id"]
    assert_error(_post(api, world.a.auth, f"{URL}/leases/{lease_id}/extend", {"ttl_seconds": 2 * 86400}), 400,
                 "invalid_ttl", field="ttl_seconds")
    assert_error(_post(api, world.a.auth, f"{URL}/leases/{lease_id}/extend", {}), 400, "required",
                 field="ttl_seconds")


# --- tenants and scopes -------------------------------------------------------------------------


def test_another_tenants_lease_and_number_are_not_found(world, api):
    # given A's lease and A's rented number (made by the world)
    lease, assignment = world.a.extra["lease"], world.a.extra["assignment"]
    expires = lease.expires_at
    # when B reads, extends or releases them; then 404 each time
    assert_error(api.get(f"{URL}/leases/{lease.public_id}", **world.b.auth), 404, "not_found")
    assert_error(_post(api, world.b.auth, f"{URL}/leases/{lease.public_id}/extend", {"ttl_seconds": 600}), 404,
                 "not_found")
    assert_error(api.delete(f"{URL}/leases/{lease.public_id}", **world.b.auth), 404, "not_found")
    assert_error(api.delete(f"{URL}/{assignment.number.public_id}", **world.b.auth), 404, "not_found")
    # and both are untouched
    lease.refresh_from_db()
    assert lease.released_at is None and lease.expires_at == expires
    assert NumberAssignment.unscoped.get(pk=assignment.pk).ended_at is None
    # and B's list shows only B's own numbers
    listed = {r["holding_id"] for r in api.get(URL, **world.b.auth).json()["results"]}
    assert listed == {world.b.extra["lease"].public_id, world.b.extra["assignment"].public_id}


def test_a_key_without_the_numbers_scope_is_refused(world, api):
    # given a key with messages:send only, and an available number
    number = stock(1)[0]
    _, secret = make_api_key(world.a.tenant, scopes=["messages:send"])
    auth = bearer(secret)
    lease = world.a.extra["lease"]
    before = _rows()
    # then every numbers route is 403 insufficient_scope
    for response in [
        api.get(f"{URL}/available", **auth),
        api.get(URL, **auth),
        _post(api, auth, URL, {"number": number.number}),
        api.delete(f"{URL}/{world.a.extra['assignment'].number.public_id}", **auth),
        _post(api, auth, f"{URL}/leases", {"country": "US", "ttl_seconds": 900}),
        api.get(f"{URL}/leases/{lease.public_id}", **auth),
        _post(api, auth, f"{URL}/leases/{lease.public_id}/extend", {"ttl_seconds": 60}),
        api.delete(f"{URL}/leases/{lease.public_id}", **auth),
    ]:
        assert_error(response, 403, "insufficient_scope")
    # and nothing changed
    assert _rows() == before


def test_a_numbers_key_may_lease(world, api):
    stock(1)
    _, secret = make_api_key(world.a.tenant, scopes=["numbers"])
    response = _post(api, bearer(secret), f"{URL}/leases", {"country": "US", "ttl_seconds": 60})
    assert response.status_code == 201, response.content
    assert parse_datetime(response.json()["expires_at"]) > timezone.now()
    assert NumberType.MOBILE == PhoneNumber.objects.get(number=response.json()["number"]).type


def test_a_lease_past_its_end_shows_as_expired(world, api, time_machine):
    # given a 1-minute lease
    stock(1)
    lease_id = _post(api, world.a.auth, f"{URL}/leases", {"country": "US", "ttl_seconds": 60}).json()["id"]
    # when its end has passed (before the sweep ran); then it shows as expired and cannot be extended
    time_machine.move_to(timezone.now() + timedelta(seconds=61))
    assert api.get(f"{URL}/leases/{lease_id}", **world.a.auth).json()["status"] == "expired"
    assert_error(_post(api, world.a.auth, f"{URL}/leases/{lease_id}/extend", {"ttl_seconds": 60}), 409, "lease_ended")
