"""The OpenAPI schema is valid, complete (every /v1 route documented) and the docs are self-hosted."""
import json
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

# Routes that serve the documentation itself.
UNDOCUMENTED = {"/v1/openapi.json", "/v1/docs"}


def _routes(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + str(entry.pattern)


def _as_openapi(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


@pytest.mark.django_db
def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


@pytest.mark.django_db
def test_it_documents_every_v1_route(client):
    schema = client.get("/v1/openapi.json")
    assert schema.status_code == 200
    assert schema["Content-Type"].startswith("application/") and "json" in schema["Content-Type"]
    documented = set(schema.json()["paths"])
    routes = {_as_openapi(r) for r in _routes() if r.startswith("/v1/")} - UNDOCUMENTED
    assert routes, "no /v1 routes found"
    assert routes - documented == set(), "routes missing from the OpenAPI schema"
    assert schema.json()["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


@pytest.mark.django_db
def test_it_serves_the_docs_page_with_local_assets_only(client):
    page = client.get("/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "docs must not load assets from another host"
    script = client.get("/v1/docs?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


# --- what the schema tells customers --------------------------------------------------------------

# Words of our code that must never reach the public schema (they did, from inherited docstrings).
INTERNAL = ("ListAPIView", "GenericAPIView", "ApiView", "get_queryset", "Python keyword", "swagger_fake_view",
            "longpoll.py", "request.lease_wait")
STANDARD_ERRORS = {"400", "401", "403", "429", "503"}


def _schema(client) -> dict:
    return client.get("/v1/openapi.json").json()


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


@pytest.mark.django_db
def test_it_gives_every_operation_a_summary_and_a_description_for_customers(client):
    schema = _schema(client)
    for path, method, operation in _operations(schema):
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        assert len(operation.get("description", "")) > 40, f"{method.upper()} {path} has no description"
    text = json.dumps(schema)
    assert [word for word in INTERNAL if word in text] == [], "internal comments in the public schema"


@pytest.mark.django_db
def test_it_documents_the_errors_every_operation_can_answer(client):
    schema = _schema(client)
    for path, method, operation in _operations(schema):
        label, responses = f"{method.upper()} {path}", operation["responses"]
        expected = set(STANDARD_ERRORS)
        expected |= {"404"} if "{" in path else set()
        expected |= {"409", "422"} if method == "post" else set()
        expected |= {"413", "415"} if "requestBody" in operation else set()
        assert expected <= set(responses), f"{label} documents no {sorted(expected - set(responses))}"
        for status in (s for s in responses if s >= "400"):
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (label, status)
            assert "`" in responses[status]["description"], f"{label} {status} lists no error code"
    error = schema["components"]["schemas"]["ErrorInfo"]
    assert set(error["properties"]) == {"code", "message", "field", "details", "reason"}
    assert set(error["required"]) == {"code", "message"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]


@pytest.mark.django_db
def test_it_lists_an_operations_own_error_codes(client):
    paths = _schema(client)["paths"]
    send = paths["/v1/messages"]["post"]["responses"]
    assert "`invalid_phone_number`" in send["400"]["description"] and "`pool_empty`" in send["409"]["description"]
    assert "`rate_limited`" in send["429"]["description"] and "Retry-After" in send["429"]["headers"]
    pools = paths["/v1/number-pools"]["post"]["responses"]
    assert "`pool_name_taken`" in pools["409"]["description"] and "`number_not_held`" in pools["422"]["description"]
    assert "`lease_ended`" in paths["/v1/numbers/leases/{lease_id}/extend"]["post"]["responses"]["409"]["description"]


@pytest.mark.django_db
def test_it_answers_the_lease_messages_as_the_array_the_schema_describes(client, world):
    # given a lease with one inbound message; when its messages are read
    lease = world.a.extra["lease"]
    answer = client.get(f"/v1/numbers/leases/{lease.public_id}/messages", **world.a.auth)
    documented = _schema(client)["paths"]["/v1/numbers/leases/{lease_id}/messages"]["get"]["responses"]["200"]
    # then the answer is a bare array, and so is the schema (not a page of results)
    assert answer.status_code == 200 and isinstance(answer.json(), list)
    assert documented["content"]["application/json"]["schema"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/InboundMessage"}}


@pytest.mark.django_db
def test_it_accepts_every_request_example_of_the_schema(client, world):
    # given what the examples refer to: available US numbers, the simulator example's number held,
    # and one object of each kind whose id a path needs
    from numbers import services as numbers
    from numbers.tests.factories import stock

    stock(5, country="US")
    held, _ = numbers.phone_number_upsert(number="+14155550100", country="US", type="mobile", capabilities=["sms"],
                                          carrier="simulator", monthly_cost=Decimal("0.5"), monthly_price=Decimal("1"))
    numbers.number_assign(tenant=world.a.tenant, number=held)
    from numbers.tests.factories import shared_senders

    shared_senders("US", "CA")  # the examples' "YourBrand" to US numbers goes from the shared US number
    ids = {"template_id": world.a.extra["template"].public_id, "pool_id": world.a.extra["pool"].public_id,
           "endpoint_id": world.a.extra["webhook_endpoint"].public_id, "lease_id": world.a.extra["lease"].public_id}
    examples = [(path, method, name, example["value"]) for path, method, operation in _operations(_schema(client))
                for name, example in operation.get("requestBody", {}).get("content", {})
                .get("application/json", {}).get("examples", {}).items()]
    assert {(path, method) for path, method, *_ in examples} >= {
        ("/v1/messages", "post"), ("/v1/numbers/leases", "post"), ("/v1/simulator/inbound", "post")}
    for path, method, name, body in examples:
        # when each is sent as it is (as Swagger UI's "Try it out" sends the first)
        response = client.generic(method.upper(), path.format(**ids), json.dumps(body), content_type="application/json",
                                  **world.a.auth)
        # then the API accepts it
        assert response.status_code < 300, (method.upper(), path, name, response.content[:300])
