"""/v1/number-pools (scope `numbers`) and sending from a pool with `"from": "pool:NAME"`."""
from __future__ import annotations

from numbers import services
from numbers.inventory import demo_numbers
from numbers.models import NumberPool, NumberPoolMember, NumberType, PoolStickySender
from numbers.tests.factories import stock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from messaging.models import Message

pytestmark = pytest.mark.django_db

URL = "/v1/number-pools"
POOL_FIELDS = {"id", "name", "description", "sticky_sender", "geo_match", "numbers", "created_at", "updated_at"}


def _rent(tenant, count: int, *, country: str = "US", start: int = 0) -> list:
    numbers = stock(count, country=country, start=start)
    for number in numbers:
        services.number_assign(tenant=tenant, number=number)
    return numbers


def _send(api, auth, sender: str, to: str, **headers):
    return api.post("/v1/messages", {"to": to, "from": sender, "text": "hello"}, format="json", **auth, **headers)


def _pools(tenant) -> list:
    return sorted(NumberPool.unscoped.filter(tenant=tenant).values_list("name", "description", "sticky_sender",
                                                                          "geo_match"))


# --- CRUD ---------------------------------------------------------------------------------------


def test_it_creates_reads_lists_changes_and_deletes_a_pool(world, api):
    # given two numbers A rents
    numbers = _rent(world.a.tenant, 2)
    # when A creates a pool of them (by E.164 and by id)
    response = api.post(URL, {"name": "alerts", "description": "Alert senders", "geo_match": False,
                              "numbers": [numbers[0].number, numbers[1].public_id]}, format="json", **world.a.auth)
    # then it answers 201 with the pool
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == POOL_FIELDS and body["id"].startswith("pool_")
    assert (body["name"], body["sticky_sender"], body["geo_match"]) == ("alerts", True, False)
    assert body["numbers"] == [{"id": n.public_id, "number": n.number, "country": "US"} for n in numbers]
    # and reads back the same
    assert api.get(f"{URL}/{body['id']}", **world.a.auth).json() == body
    # and the list shows A's two pools by name, none of B's
    listed = api.get(URL, **world.a.auth).json()["results"]
    assert [p["name"] for p in listed] == ["alerts", "senders"]
    assert world.b.extra["pool"].public_id not in str(listed)
    # when A renames it, turns sticky sender off and takes out one number
    changed = api.patch(f"{URL}/{body['id']}", {"name": "alerts-v2", "sticky_sender": False,
                                                  "remove_numbers": [numbers[0].number]}, format="json", **world.a.auth)
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["sticky_sender"]) == ("alerts-v2", False)
    assert [n["number"] for n in changed.json()["numbers"]] == [numbers[1].number]
    # and replaces the members
    replaced = api.patch(f"{URL}/{body['id']}", {"numbers": [numbers[0].number]}, format="json", **world.a.auth)
    assert [n["number"] for n in replaced.json()["numbers"]] == [numbers[0].number]
    # when A deletes it; then it is gone, with an audit trail of the three changes
    assert api.delete(f"{URL}/{body['id']}", **world.a.auth).status_code == 204
    assert_error(api.get(f"{URL}/{body['id']}", **world.a.auth), 404, "pool_not_found")
    actions = AuditEvent.unscoped.filter(tenant=world.a.tenant, target_id=body["id"]).values_list("action", flat=True)
    assert sorted(actions) == ["number_pool.changed", "number_pool.changed", "number_pool.created",
                               "number_pool.deleted"]


def test_the_list_is_paginated_with_a_bounded_number_of_queries(world, api):
    numbers = _rent(world.a.tenant, 3)
    for i in range(5):
        api.post(URL, {"name": f"p{i}", "numbers": [n.number for n in numbers]}, format="json", **world.a.auth)
    with CaptureQueriesContext(connection) as queries:
        page = api.get(f"{URL}?limit=4", **world.a.auth).json()
    assert len(page["results"]) == 4 and page["next"]
    assert len(queries.captured_queries) <= 8, [q["sql"] for q in queries.captured_queries]
    rest = api.get(page["next"], **world.a.auth).json()["results"]
    assert len(rest) == 2 and all(len(p["numbers"]) == 3 for p in rest if p["name"] != "senders")


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({}, 400, "required", "name"),
    ({"name": "has space"}, 400, "invalid_pool_name", "name"),
    ({"name": "x" * 51}, 400, "invalid_pool_name", "name"),
    ({"name": "senders"}, 409, "pool_name_taken", "name"),
    ({"name": "new", "numbers": ["+10000000000"]}, 422, "number_not_held", "numbers"),
    ({"name": "new", "numbers": "+10000000000"}, 400, "not_a_list", "numbers"),
])
def test_it_refuses_invalid_pools_by_code(world, api, body, status, code, field):
    before = _pools(world.a.tenant)
    assert_error(api.post(URL, body, format="json", **world.a.auth), status, code, field=field)
    assert _pools(world.a.tenant) == before


def test_it_refuses_another_tenants_number_like_a_missing_one(world, api):
    # given B's rented number; when A puts it in a pool, by E.164 or by id; then 422 number_not_held
    theirs = world.b.extra["assignment"].number
    for ref in (theirs.number, theirs.public_id):
        error = assert_error(api.post(URL, {"name": "steal", "numbers": [ref]}, format="json", **world.a.auth),
                             422, "number_not_held", field="numbers")
        assert error["message"] == f"{ref!r} is not a number you hold."
    patch = api.patch(f"{URL}/{world.a.extra['pool'].public_id}", {"add_numbers": [theirs.number]}, format="json",
                      **world.a.auth)
    assert_error(patch, 422, "number_not_held", field="add_numbers")
    assert not NumberPoolMember.unscoped.filter(number=theirs, pool__tenant=world.a.tenant).exists()


def test_a_rename_to_a_taken_name_is_refused(world, api):
    pool = api.post(URL, {"name": "other"}, format="json", **world.a.auth).json()
    assert_error(api.patch(f"{URL}/{pool['id']}", {"name": "senders"}, format="json", **world.a.auth), 409,
                 "pool_name_taken", field="name")
    assert NumberPool.unscoped.get(public_id=pool["id"]).name == "other"


def test_another_tenants_pool_answers_like_a_missing_one(world, api):
    # given B's pool; when A reads, changes or deletes it; then 404 with the same body as a made-up id
    theirs, missing = world.b.extra["pool"].public_id, "pool_doesnotexist000000"
    for method, body in (("get", None), ("patch", {"name": "mine"}), ("delete", None)):
        call = getattr(api, method)
        responses = [call(f"{URL}/{pool_id}", body, format="json", **world.a.auth) for pool_id in (theirs, missing)]
        assert_error(responses[0], 404, "pool_not_found")
        assert responses[0].json() == responses[1].json()
    assert NumberPool.unscoped.get(public_id=theirs).name == "senders"


def test_a_key_without_the_numbers_scope_is_refused(world, api):
    _, secret = make_api_key(world.a.tenant, scopes=["messages:send", "messages:read"])
    auth, pool = bearer(secret), world.a.extra["pool"].public_id
    before = _pools(world.a.tenant)
    for response in (api.get(URL, **auth), api.post(URL, {"name": "x"}, format="json", **auth),
                     api.get(f"{URL}/{pool}", **auth), api.patch(f"{URL}/{pool}", {"name": "y"}, format="json", **auth),
                     api.delete(f"{URL}/{pool}", **auth)):
        assert_error(response, 403, "insufficient_scope")
    assert _pools(world.a.tenant) == before


# --- sending from a pool ------------------------------------------------------------------------


def test_a_message_from_a_pool_records_the_number_and_the_pool(world, api):
    # given a US+GB pool
    us, gb = _rent(world.a.tenant, 1)[0], _rent(world.a.tenant, 1, country="GB", start=300)[0]
    api.post(URL, {"name": "global", "numbers": [us.number, gb.number]}, format="json", **world.a.auth)
    to = next(demo_numbers("GB", NumberType.MOBILE, 1, start=600))
    # when A sends to a GB recipient from pool:global
    response = _send(api, world.a.auth, "pool:global", to)
    # then the answer and the stored message show the GB number and the pool
    assert response.status_code == 202, response.content
    assert (response.json()["from"], response.json()["pool"]) == (gb.number, "global")
    message = Message.unscoped.get(public_id=response.json()["id"])
    assert message.sender == gb.number and message.pool.name == "global"
    detail = api.get(f"/v1/messages/{message.public_id}", **world.a.auth).json()
    assert (detail["from"], detail["pool"]) == (gb.number, "global")
    # and the recipient is remembered for next time
    assert PoolStickySender.unscoped.get(pool=message.pool, recipient=to).number == gb
    # and a message with a plain sender shows no pool
    assert _send(api, world.a.auth, "Acme", to).json()["pool"] is None


def test_an_unknown_or_foreign_pool_is_404_and_nothing_is_stored(world, api):
    count = Message.unscoped.count()
    # given a pool only B has; when A sends from it, or from a name nobody has; then 404 pool_not_found
    api.post(URL, {"name": "b-only"}, format="json", **world.b.auth)
    for name in ("nope", "b-only"):
        assert_error(_send(api, world.a.auth, f"pool:{name}", "+14155550123"), 404, "pool_not_found", field="from")
    assert Message.unscoped.count() == count


def test_an_empty_pool_is_409_and_nothing_is_stored(world, api):
    # given A's pool whose only number A released
    services.number_release_assignment(tenant=world.a.tenant, assignment=world.a.extra["assignment"])
    count = Message.unscoped.count()
    # when A sends from it; then 409 pool_empty, nothing stored, no cursor moved
    assert_error(_send(api, world.a.auth, "pool:senders", "+14155550123"), 409, "pool_empty", field="from")
    assert Message.unscoped.count() == count
    assert NumberPool.unscoped.get(pk=world.a.extra["pool"].pk).rr_cursor == 0


def test_a_quote_from_a_pool_writes_nothing(world, api):
    pool = world.a.extra["pool"]
    body = {"to": "+14155550123", "from": "pool:senders", "text": "hi"}
    response = api.post("/v1/messages/quote", body, format="json", **world.a.auth)
    assert response.status_code == 200, response.content
    assert not PoolStickySender.unscoped.filter(pool=pool).exists()
    assert NumberPool.unscoped.get(pk=pool.pk).rr_cursor == 0
    assert_error(api.post("/v1/messages/quote", {**body, "from": "pool:nope"}, format="json", **world.a.auth),
                 404, "pool_not_found", field="from")


def test_a_retried_pool_send_replays_the_first_answer(world, api):
    # given a pool of three numbers and a send with an Idempotency-Key
    numbers = _rent(world.a.tenant, 3)
    api.post(URL, {"name": "rr", "sticky_sender": False, "numbers": [n.number for n in numbers]}, format="json",
             **world.a.auth)
    first = _send(api, world.a.auth, "pool:rr", "+14155550123", HTTP_IDEMPOTENCY_KEY="pool-1")
    # when it is retried; then the same answer (same number) comes back and the cursor moved once
    again = _send(api, world.a.auth, "pool:rr", "+14155550123", HTTP_IDEMPOTENCY_KEY="pool-1")
    assert first.status_code == 202 and again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert NumberPool.unscoped.get(tenant=world.a.tenant, name="rr").rr_cursor == 1
