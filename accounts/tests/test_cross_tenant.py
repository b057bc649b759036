"""TEN-1: the cross-tenant matrix, generated from the URL configuration.

Every route under /v1/ and /portal/ is found by walking Django's resolver, so a route added
later is covered without touching this file: signed in as tenant B (API: B's admin key; portal:
B's owner with a verified second factor), each route is called with GET, POST and DELETE, every
path parameter filled with tenant A's object of that kind. Then:

- a route that names one of A's objects answers 404 (or 405 when the method is not allowed), with
  the same status and body as for an id that exists nowhere: no existence oracle;
- no response, on any route, contains any of A's identifiers (public ids, key prefix, emails,
  tenant name and slug), except the ids this test itself put in the path;
- afterwards, A's rows are exactly as before: the tenant, its people and held numbers, and the rows
  of every tenant-owned model (every model with a `tenant` foreign key, from the app registry:
  accounts/tests/tenant_models.py), so a model added later is in the snapshot and the scan.

A route with a path parameter that KWARGS does not know fails the test with a message saying what
to add, so a new kind of object cannot slip past unmapped. Each request uses a fresh signed-in
client, so routes such as logout or switch-tenant cannot disturb the others and none is skipped.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers.models import InboundMessage, PhoneNumber

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts.models import ApiKey, Invitation, Membership, Tenant, User
from accounts.roles import Role
from accounts.tests.factories import Side, login_verified
from accounts.tests.tenant_models import tenant_owned_models
from billing.models import CreditNote, Invoice
from messaging.models import Message, MessageTemplate
from smsportal.api.throttling import ApiKeyRateThrottle
from smsportal.events.models import WebhookDelivery, WebhookEndpoint
from smsportal.ids import public_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(world):
    """The shared world, with a consent record and a suppression for each tenant: their routes are walked too."""
    from compliance.tests.consent_helpers import consent_rows

    consent_rows(world)
    return world

PREFIXES = ("v1/", "portal/")
METHODS = ("GET", "POST", "DELETE")


@dataclass(frozen=True)
class Kwarg:
    """How to fill one path parameter.

    `object`: a tenant-owned object, looked up within the signed-in tenant: A's must be a 404
    exactly like a missing one, and B's own must be found. `public`: not tenant-owned (links in
    emails used signed out): any non-5xx answer is fine as long as no A data shows and A's rows
    do not change.
    """

    kind: str
    value: Callable[[Side], str]
    missing_prefix: str = ""


KWARGS: dict[str, Kwarg] = {
    "api_key_id": Kwarg("object", lambda side: side.api_key.public_id, "key"),
    "entry_id": Kwarg("object", lambda side: side.allowlist_entry.public_id, "ipa"),
    "membership_id": Kwarg("object", lambda side: side.membership(Role.OWNER).public_id, "mem"),
    "invitation_id": Kwarg("object", lambda side: side.extra["invitation"].public_id, "inv"),
    "message_id": Kwarg("object", lambda side: side.extra["message"].public_id, "msg"),
    "template_id": Kwarg("object", lambda side: side.extra["template"].public_id, "tpl"),
    "endpoint_id": Kwarg("object", lambda side: side.extra["webhook_endpoint"].public_id, "whe"),
    "delivery_id": Kwarg("object", lambda side: side.extra["webhook_delivery"].public_id, "whd"),
    "number_id": Kwarg("object", lambda side: side.extra["assignment"].number.public_id, "num"),
    "lease_id": Kwarg("object", lambda side: side.extra["lease"].public_id, "lse"),
    "inbound_id": Kwarg("object", lambda side: side.extra["inbound"].public_id, "inb"),
    "pool_id": Kwarg("object", lambda side: side.extra["pool"].public_id, "pool"),
    "invoice_id": Kwarg("object", lambda side: side.extra["invoice"].public_id, "inv"),
    "credit_note_id": Kwarg("object", lambda side: side.extra["credit_note"].public_id, "crn"),
    "suppression_id": Kwarg("object", lambda side: side.extra["suppression"].public_id, "sup"),
    "sender_id": Kwarg("object", lambda side: side.extra["sender_id"].public_id, "sid"),
    # A country's rules (compliance): platform data, the same for every tenant.
    "iso": Kwarg("public", lambda side: "US"),
    # An invitation link's token: only its hash is stored, so a made-up one stands in.
    "token": Kwarg("public", lambda side: "made-up-token-" + "x" * 24),
    # Password reset links: A's owner's id with a made-up token.
    "uidb64": Kwarg("public", lambda side: urlsafe_base64_encode(force_bytes(side.owner.pk))),
}

# (route, method) -> why it is not called. Kept empty on purpose: a fresh client per request
# means nothing needs skipping; an entry here must say why, and must name an existing route.
SKIPPED: dict[tuple[str, str], str] = {}

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


# --- the route inventory ------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    template: str  # e.g. "v1/api-keys/<public_id:api_key_id>"
    pattern: URLPattern

    @property
    def kwargs(self) -> list[str]:
        return [m["name"] for m in _PARAM.finditer(self.template)]

    @property
    def is_api(self) -> bool:
        return self.template.startswith("v1/")


def _pattern_text(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return str(pattern)
    if isinstance(pattern, RegexPattern):
        # "^reset/(?P<uidb64>[^/]+)/$" -> "reset/<uidb64>/"
        text = _REGEX_GROUP.sub(lambda m: f"<{m['name']}>", str(pattern))
        text = text.removeprefix("^").removesuffix(r"\Z").removesuffix("$")
        if re.search(r"[\\()\[\]?*+|{}]", text):
            raise AssertionError(f"cannot build a concrete path for the regex route {str(pattern)!r}")
        return text
    raise AssertionError(f"unknown URL pattern type {type(pattern).__name__}")


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + _safe_text(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix, entry


_UNBUILDABLE = "\x00unbuildable:"


def _safe_text(pattern) -> str:
    # Outside /v1 and /portal (e.g. the admin's regex routes) nothing is built, so nothing must fail there.
    try:
        return _pattern_text(pattern)
    except AssertionError:
        return _UNBUILDABLE + str(pattern)


def routes() -> list[Route]:
    found = []
    for prefix, pattern in _walk(get_resolver().url_patterns):
        template = prefix + _safe_text(pattern.pattern)
        if not template.startswith(PREFIXES):
            continue
        assert _UNBUILDABLE not in template, f"cannot build a concrete path for {template!r}"
        found.append(Route(template, pattern))
    return sorted(found, key=lambda r: r.template)


def unmapped(all_routes: list[Route]) -> dict[str, list[str]]:
    return {r.template: [k for k in r.kwargs if k not in KWARGS] for r in all_routes if set(r.kwargs) - set(KWARGS)}


def build(route: Route, values: dict[str, str]) -> str:
    path = "/" + _PARAM.sub(lambda m: values[m["name"]], route.template)
    match = resolve(path)
    assert match.func is route.pattern.callback, f"{path} does not resolve back to the route {route.template}"
    return path


# --- tenant A's identifiers and rows --------------------------------------------------------------


# Fields besides `public_id` whose values would betray A in a response to B, by model.
IDENTIFYING_FIELDS: dict[type, tuple[str, ...]] = {
    ApiKey: ("key_id",),
    Membership: ("user__email",),
    Invitation: ("email",),
    WebhookEndpoint: ("url", "secret_prefix"),
    WebhookDelivery: ("event_id",),
    Message: ("client_reference", "text"),
    MessageTemplate: ("name",),
    InboundMessage: ("carrier_message_id", "text"),
    Invoice: ("number", "bill_to_name"),
    CreditNote: ("number",),
}


def a_identifiers(side: Side) -> set[str]:
    """Every string that would betray tenant A's data in a response to B: the public id of each of
    A's rows of every tenant-owned model, the fields above, and the numbers A holds."""
    tenant = side.tenant
    ids = {tenant.name, side.api_key.prefix, side.api_key.key_id, side.secret}
    for model in tenant_owned_models():
        fields = (*(("public_id",) if any(f.name == "public_id" for f in model._meta.fields) else ()),
                  *IDENTIFYING_FIELDS.get(model, ()))
        for field in fields:
            ids |= {value for value in model.unscoped.filter(tenant=tenant).values_list(field, flat=True) if value}
    ids |= set(PhoneNumber.objects.filter(holder=tenant).values_list("number", flat=True))
    return ids


def leaks(text: str, identifiers: set[str], slug: str) -> list[str]:
    found = sorted(i for i in identifiers if i in text)
    # The slug is a plain word ("alpha"): match it only as a whole token.
    if re.search(rf"(?<![\w-]){re.escape(slug)}(?![\w-])", text):
        found.append(slug)
    return found


def a_rows(side: Side) -> dict[str, list[dict]]:
    """A's rows: the tenant, its people, the numbers it holds and every tenant-owned model's rows."""
    tenant = side.tenant
    users = Membership.unscoped.filter(tenant=tenant).values_list("user_id", flat=True)
    rows = {
        "tenant": list(Tenant.objects.filter(pk=tenant.pk).values()),
        "users": list(User.objects.filter(pk__in=users).order_by("pk").values()),
        "numbers_held": list(PhoneNumber.objects.filter(holder=tenant).order_by("pk").values()),
    }
    for model in tenant_owned_models():
        rows[model._meta.label] = list(model.unscoped.filter(tenant=tenant).order_by("pk").values())
    return rows


def test_the_snapshot_covers_every_tenant_owned_model(world):
    # given the app registry; then the snapshot has a non-empty table for each model the world fills,
    # messages, templates and inbound messages included
    rows = a_rows(world.a)
    for label in ("messaging.Message", "messaging.MessageEvent", "messaging.MessageTemplate",
                  "numbers.InboundMessage", "numbers.NumberPoolMember", "accounts.ApiKey"):
        assert rows[label], f"the world has no {label} row for tenant A"
    assert {model._meta.label for model in tenant_owned_models()} <= set(rows)


# --- requests as B --------------------------------------------------------------------------------


def _request(route: Route, method: str, path: str, world):
    if route.is_api:
        client = APIClient()
        body = json.dumps({}) if method == "POST" else None
        return client.generic(method, path, data=body, content_type="application/json", **world.b.auth)
    client = login_verified(Client(), world.b.owner, tenant=world.b.tenant)
    if method == "POST":
        return client.post(path, {})
    return client.generic(method, path)


class Problems(list):
    def add(self, route: Route, method: str, path: str, message: str) -> None:
        self.append(f"{method} {path}  [{route.template}]: {message}")


def _safe_request(route: Route, method: str, path: str, world, problems: Problems):
    try:
        return _request(route, method, path, world)
    except Exception as exc:  # a crash is a finding too; report it with the others
        problems.add(route, method, path, f"raised {exc.__class__.__name__}: {exc}")
        return None


def _text(response) -> str:
    body = b"" if getattr(response, "streaming", False) else response.content
    return body.decode("utf-8", "replace") + "\n" + response.get("Location", "")


_CSRF_VALUE = re.compile(r'(name="csrfmiddlewaretoken"\s+value=")[^"]*(")|(value=")[A-Za-z0-9]{64}(")')


def _normalised(response, values: list[str]) -> str:
    text = _text(response)
    for value in values:
        text = text.replace(value, "<ID>")
    # A masked CSRF token differs on every render of the same page.
    return _CSRF_VALUE.sub(lambda m: (m[1] or m[3]) + "<CSRF>" + (m[2] or m[4]), text)


def _check_route(route: Route, world, identifiers: set[str], problems: Problems) -> dict[str, int]:
    """Call one route with every method; returns the statuses seen, for the report."""
    kinds = {KWARGS[k].kind for k in route.kwargs}
    foreign = {k: KWARGS[k].value(world.a) for k in route.kwargs}
    missing = {k: public_id(KWARGS[k].missing_prefix) if KWARGS[k].kind == "object" else foreign[k]
               for k in route.kwargs}
    path, missing_path = build(route, foreign), build(route, missing)
    echoed = list(foreign.values())  # the test put these in the path; a page may repeat its own URL
    allowed_identifiers = identifiers - set(echoed)
    statuses = {}
    for method in METHODS:
        if (route.template, method) in SKIPPED:
            continue
        response = _safe_request(route, method, path, world, problems)
        if response is None:
            continue
        statuses[method] = response.status_code
        if response.status_code >= 500:
            problems.add(route, method, path, f"answered {response.status_code}")
        # Any JSON media type: the schema view answers its own 405 as application/vnd.oai.openapi+json.
        if route.is_api and response.status_code >= 400 and "json" not in response["Content-Type"]:
            problems.add(route, method, path, f"API error is not JSON ({response['Content-Type']})")
        found = leaks(_text(response), allowed_identifiers, world.a.tenant.slug)
        if found:
            problems.add(route, method, path, f"response contains tenant A's identifiers {found}")
        if "object" in kinds:
            if response.status_code not in (404, 405):
                problems.add(route, method, path, f"A's object answered {response.status_code}, expected 404 (or 405)")
            other = _safe_request(route, method, missing_path, world, problems)
            if other is None:
                continue
            if other.status_code != response.status_code:
                problems.add(route, method, path, f"A's object answered {response.status_code} but a missing one "
                                                  f"{other.status_code}: an existence oracle")
            elif _normalised(response, echoed) != _normalised(other, list(missing.values())):
                problems.add(route, method, path, "A's object and a missing one answer with different bodies")
    if "object" in kinds and "public" not in kinds:
        own = build(route, {k: KWARGS[k].value(world.b) for k in route.kwargs})
        response = _safe_request(route, "GET", own, world, problems)
        if response is not None and response.status_code == 404:
            problems.add(route, "GET", own, "B's own object is not found either: is the KWARGS mapping right?")
        elif response is not None and re.search(r"/portal/(login|2fa/verify)", response.get("Location", "")):
            problems.add(route, "GET", own, "B was sent to sign in: the matrix is not running as B")
    return statuses


# --- the tests ------------------------------------------------------------------------------------


def test_every_route_parameter_is_mapped():
    # given every /v1 and /portal route; then each path parameter has a known tenant-A object
    missing = unmapped(routes())
    assert not missing, (
        "routes with path parameters the cross-tenant matrix does not know; add each to KWARGS in "
        "accounts/tests/test_cross_tenant.py with how to get tenant A's object of that kind:\n"
        + "\n".join(f"  {template}: {names}" for template, names in missing.items())
    )


def test_the_inventory_finds_the_known_routes():
    # given the URL configuration; then the walk sees the API and the portal, with and without parameters
    templates = {r.template for r in routes()}
    assert {"v1/me", "v1/api-keys", "v1/api-keys/<public_id:api_key_id>", "v1/ip-allowlist",
            "v1/ip-allowlist/<public_id:entry_id>", "v1/openapi.json", "v1/docs", "portal/"} <= templates
    assert not any(t.startswith("admin/") for t in templates)
    assert all((t, m) in {(r.template, m) for r in routes() for m in METHODS} for t, m in SKIPPED), "stale SKIPPED"


def test_an_unknown_parameter_fails_loudly():
    # given a route whose parameter is not in KWARGS
    fake = Route("portal/widgets/<str:widget_id>/", URLPattern(RoutePattern("widgets/<str:widget_id>/"), lambda r: None))
    # then it is reported by name
    assert unmapped([fake]) == {"portal/widgets/<str:widget_id>/": ["widget_id"]}


def test_tenant_b_cannot_see_or_touch_tenant_a_anywhere(world, monkeypatch):
    # given both tenants, A's identifiers and a snapshot of A's rows; B's key is not rate-limited here,
    # since the matrix sends several hundred requests within seconds and a 429 would hide the answer
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {ApiKeyRateThrottle.scope: None})
    all_routes = routes()
    assert not unmapped(all_routes), "see test_every_route_parameter_is_mapped"
    identifiers = a_identifiers(world.a)
    before = a_rows(world.a)
    problems = Problems()
    # when B calls every route with every method, aimed at A's objects
    report = {route.template: _check_route(route, world, identifiers, problems) for route in all_routes}
    # then no request leaked or reached A's data
    assert not problems, f"{len(problems)} cross-tenant problems:\n" + "\n".join(problems)
    # and A's rows are exactly as before
    after = a_rows(world.a)
    changed = {table: (before[table], after[table]) for table in before if before[table] != after[table]}
    assert not changed, f"tenant A's rows changed: {changed}"
    # and the matrix really ran: every route answered every method not skipped
    for template, statuses in report.items():
        assert set(statuses) == {m for m in METHODS if (template, m) not in SKIPPED}, (template, statuses)


def test_the_matrix_is_not_vacuous(world):
    # given B's own lists; then they show B's objects (so "no A identifiers" on them means something)
    api = APIClient()
    keys = api.get("/v1/api-keys", **world.b.auth).content.decode()
    entries = api.get("/v1/ip-allowlist", **world.b.auth).content.decode()
    assert world.b.api_key.public_id in keys and world.b.allowlist_entry.public_id in entries
    # and the portal really serves B signed in with a verified second factor
    page = login_verified(Client(), world.b.owner, tenant=world.b.tenant).get("/portal/")
    assert page.status_code == 200 and world.b.tenant.name in page.content.decode()
    # and A's identifiers are really found when they are there
    assert leaks(api.get("/v1/api-keys", **world.a.auth).content.decode(), a_identifiers(world.a), "alpha")


def test_a_foreign_password_reset_link_changes_nothing(world):
    # given A's owner's password hash
    before = User.objects.get(pk=world.a.owner.pk).password
    routes_with_reset = [r for r in routes() if "uidb64" in r.kwargs]
    if not routes_with_reset:
        pytest.skip("the portal has no password reset link route")
    # when B posts a new password to every reset link for A's owner with a made-up token
    for route in routes_with_reset:
        path = build(route, {k: KWARGS[k].value(world.a) for k in route.kwargs})
        password = "brand new password 123"
        login_verified(Client(), world.b.owner, tenant=world.b.tenant).post(
            path, {"new_password1": password, "new_password2": password})
    # then A's owner's password is unchanged
    assert User.objects.get(pk=world.a.owner.pk).password == before
    assert not User.objects.get(pk=world.a.owner.pk).check_password("brand new password 123")
