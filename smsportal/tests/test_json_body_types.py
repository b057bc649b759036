"""Request bodies take the JSON types the schema promises: DRF's coercions (0 -> "0", 0 -> false, "5" -> 5) are refused."""
from __future__ import annotations

from numbers.tests.factories import shared_senders

import pytest

from accounts.tests.api_assertions import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.mark.parametrize(("url", "method", "body", "field"), [
    ("/v1/templates/{template}", "patch", {"description": 0}, "description"),
    ("/v1/webhook-endpoints/{endpoint}", "patch", {"enabled": 0}, "enabled"),
    ("/v1/webhook-endpoints/{endpoint}", "patch", {"enabled": "yes"}, "enabled"),
    ("/v1/number-pools/{pool}", "patch", {"remove_numbers": [0]}, "remove_numbers[0]"),
    ("/v1/numbers/leases", "post", {"country": "US", "ttl_seconds": "900"}, "ttl_seconds"),
    ("/v1/numbers/leases", "post", {"country": "US", "ttl_seconds": True}, "ttl_seconds"),
    ("/v1/messages", "post", {"to": 14155550123, "from": "YourBrand", "text": "hi"}, "to"),
])
def test_it_refuses_a_body_field_of_the_wrong_json_type(world, api, url, method, body, field):
    # given a body with one field of the wrong JSON type
    path = url.format(template=world.a.extra["template"].public_id, pool=world.a.extra["pool"].public_id,
                      endpoint=world.a.extra["webhook_endpoint"].public_id)
    # when sent; then 400 on that field, and nothing changed
    response = getattr(api, method)(path, body, format="json", **world.a.auth)
    assert_error(response, 400, "invalid", field=field)


def test_it_lists_wrong_types_beside_the_other_invalid_fields(world, api):
    response = api.post("/v1/numbers/leases", {"country": "USA", "ttl_seconds": "900"}, format="json", **world.a.auth)
    error = assert_error(response, 400, "validation_error")
    assert {(d["field"], d["code"]) for d in error["details"]} == {("country", "invalid"), ("ttl_seconds", "invalid")}


def test_it_still_takes_null_where_a_field_allows_it(world, api):
    response = api.post("/v1/messages", {"to": "+14155550123", "from": "YourBrand", "text": "hi",
                                         "validity_period": None, "scheduled_at": None}, format="json", **world.a.auth)
    assert response.status_code == 202, response.content
