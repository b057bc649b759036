"""Cursor pagination of every list: a cursor or limit the list cannot use is a 400 on that field, never a 404 or a 500."""
from __future__ import annotations

import base64

import pytest

from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import make_api_key

pytestmark = pytest.mark.django_db

LISTS = ["/v1/messages", "/v1/api-keys", "/v1/numbers", "/v1/number-pools", "/v1/inbound-messages"]


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("cursor", ["not-a-cursor", "%C3%A9t%C3%A9", _cursor("o=x"), _cursor("p=a%00b")])
def test_it_refuses_a_cursor_it_did_not_give_out(world, api, url, cursor):
    # given a made-up cursor (garbage, not base64, a forged offset, a NUL byte); when listing with it
    response = api.get(f"{url}?cursor={cursor}", **world.a.auth)
    # then 400 on the cursor, not DRF's 404
    assert_error(response, 400, "invalid_cursor", field="cursor")


@pytest.mark.parametrize("url", ["/v1/messages", "/v1/api-keys", "/v1/inbound-messages"])  # ordered by a time
def test_it_refuses_a_cursor_whose_position_is_not_a_time(world, api, url):
    response = api.get(f"{url}?cursor={_cursor('p=yesterday')}", **world.a.auth)
    # then 400, not a 500 from the database comparing "yesterday" with a date
    assert_error(response, 400, "invalid_cursor", field="cursor")


@pytest.mark.parametrize("limit", ["abc", "0", "-5", "1.5", "٣"])
def test_it_refuses_a_limit_that_is_not_a_whole_number_of_at_least_one(world, api, limit):
    assert_error(api.get(f"/v1/messages?limit={limit}", **world.a.auth), 400, "invalid_limit", field="limit")


def test_it_reads_an_empty_limit_or_cursor_as_not_given_and_caps_a_large_limit(world, api):
    assert api.get("/v1/api-keys?limit=&cursor=", **world.a.auth).status_code == 200
    page = api.get("/v1/api-keys?limit=100000", **world.a.auth)
    assert page.status_code == 200 and page.json()["results"]


def test_a_cursor_it_gave_out_still_pages(world, api):
    make_api_key(world.a.tenant, name="second")
    first = api.get("/v1/api-keys?limit=1", **world.a.auth).json()
    assert first["next"]
    second = api.get(first["next"], **world.a.auth)
    assert second.status_code == 200 and second.json()["results"] != first["results"]
