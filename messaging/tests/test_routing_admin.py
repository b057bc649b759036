"""The routing admin: carrier credentials write-only and audited, rate decks imported and exported as CSV,
circuits and their transitions, and each message's attempts shown to staff with the carrier and cost."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, login_verified
from messaging.models import Carrier, Route, RouteCircuit
from messaging.routing.credentials import credentials_decrypt, credentials_encrypt
from messaging.routing.dispatching import circuit_move

pytestmark = pytest.mark.django_db
SECRET = "smpp-password-77"


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


@pytest.fixture
def carrier() -> Carrier:
    return Carrier.objects.create(name="eu-smpp-1", kind="smpp", settings={"host": "127.0.0.1", "port": 2775},
                                  credentials_encrypted=credentials_encrypt({"password": SECRET}))


def _form(carrier: Carrier, **changes) -> dict:
    data = {"name": carrier.name, "kind": carrier.kind, "enabled": "on",
            "settings": '{"host": "127.0.0.1", "port": 2775, "system_id": "acme"}',
            "new_credentials": "", "routes-TOTAL_FORMS": "0", "routes-INITIAL_FORMS": "0"}
    data.update(changes)
    return data


def test_the_carrier_page_never_shows_a_secret(client, staff, carrier):
    page = client.get(reverse("admin:messaging_carrier_change", args=[carrier.pk])).content.decode()
    assert SECRET not in page and carrier.credentials_encrypted not in page
    assert "password" in page  # the names of what is stored


def test_a_blank_credentials_field_keeps_them_and_a_new_one_replaces_and_is_audited(client, staff, carrier):
    url = reverse("admin:messaging_carrier_change", args=[carrier.pk])
    assert client.post(url, _form(carrier, settings='{"host": "127.0.0.1", "port": 2776, "system_id": "acme"}')).status_code == 302
    carrier.refresh_from_db()
    assert carrier.settings["port"] == 2776 and credentials_decrypt(carrier.credentials_encrypted) == {"password": SECRET}
    assert client.post(url, _form(carrier, new_credentials='{"password": "rotated-1"}')).status_code == 302
    carrier.refresh_from_db()
    assert credentials_decrypt(carrier.credentials_encrypted) == {"password": "rotated-1"}
    audits = list(AuditEvent.unscoped.filter(action="carrier.change").values_list("changes", flat=True))
    assert audits[0]["secrets_changed"] == ["password"]
    assert all("rotated-1" not in str(a) and SECRET not in str(a) for a in audits)
    refused = client.post(url, _form(carrier, new_credentials='{"colour": "red"}'))
    assert refused.status_code == 200 and "keys are among" in refused.content.decode()


def test_a_rate_deck_is_imported_and_exported_as_csv(client, staff, carrier):
    deck = "prefix,country,operator,cost,currency,effective_from\n44,GB,,0.0310,EUR,\n4477,GB,234/15,0.029,EUR,\n"
    response = client.post(reverse("admin:messaging_route_import"), {
        "carrier": carrier.pk, "deck": SimpleUploadedFile("deck.csv", deck.encode(), content_type="text/csv")})
    assert response.status_code == 302
    assert sorted(Route.objects.values_list("prefix", "cost")) == [("44", Decimal("0.031")), ("4477", Decimal("0.029"))]
    assert AuditEvent.unscoped.filter(action="routes.import").exists()
    exported = client.post(reverse("admin:messaging_route_changelist"), {
        "action": "deck_export", "_selected_action": list(Route.objects.values_list("pk", flat=True))})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["prefix", "country", "operator", "cost", "currency", "effective_from"]
    assert [(r[0], r[2], r[3]) for r in rows[1:]] == [("44", "", "0.031000"), ("4477", "234/15", "0.029000")]


def test_a_bad_deck_is_shown_with_its_line_and_writes_nothing(client, staff, carrier):
    response = client.post(reverse("admin:messaging_route_import"), {
        "carrier": carrier.pk, "deck": SimpleUploadedFile("deck.csv", b"prefix,country,operator,cost,currency,"
                                                                      b"effective_from\n44,GB,,free,EUR,\n")})
    assert response.status_code == 200 and "line 2: cost" in response.content.decode()
    assert not Route.objects.exists()


def test_a_circuit_and_its_transitions_show_in_admin(client, staff, carrier):
    route = Route.objects.create(carrier=carrier, prefix="44", cost=Decimal("0.03"), currency="EUR",
                                 cost_from=timezone.now())
    circuit = RouteCircuit.objects.create(route=route)
    circuit_move(circuit, RouteCircuit.State.OPEN, "5 consecutive route failures")
    page = client.get(reverse("admin:messaging_routecircuittransition_changelist")).content.decode()
    assert "5 consecutive route failures" in page
    listing = client.get(reverse("admin:messaging_route_changelist")).content.decode()
    assert "open" in listing and "Import a rate deck" in listing


def test_a_route_added_or_repriced_in_admin_is_routed_and_keeps_its_history(client, staff, carrier):
    """A route added on the carrier's page is in force at once (it has a cost from now, so the routing table
    takes it), and a cost changed on the route's page stays (the minute's route_costs_apply does not put the
    old one back) with both costs in its history, audited."""
    from messaging.routing.cache import routing_cache_clear
    from messaging.routing.decks import route_costs_apply
    from messaging.routing.lcr import routes_plan
    from messaging.routing.models import RouteCost

    routes = {"routes-TOTAL_FORMS": "1", "routes-INITIAL_FORMS": "0", "routes-0-prefix": "4477", "routes-0-country": "GB",
              "routes-0-operator": "", "routes-0-cost": "0.0310", "routes-0-currency": "EUR", "routes-0-priority": "1",
              "routes-0-message_types": "[]", "routes-0-sender_types": "[]", "routes-0-enabled": "on"}
    url = reverse("admin:messaging_carrier_change", args=[carrier.pk])
    assert client.post(url, _form(carrier, **routes)).status_code == 302
    route = Route.objects.get(carrier=carrier, prefix="4477")
    assert route.cost_from is not None
    routing_cache_clear()
    plan = routes_plan(to="+447700900123", message_type="transactional", sender="+447700900999")
    assert [c.route.pk for c in plan.candidates] == [route.pk]

    change = {"carrier": carrier.pk, "prefix": "4477", "country": "GB", "operator": "", "cost": "0.0250",
              "currency": "EUR", "priority": "1", "message_types": "[]", "sender_types": "[]", "enabled": "on"}
    assert client.post(reverse("admin:messaging_route_change", args=[route.pk]), change).status_code == 302
    route_costs_apply()
    route.refresh_from_db()
    assert route.cost == Decimal("0.0250")
    assert sorted(RouteCost.objects.filter(route=route).values_list("cost", flat=True)) == [Decimal("0.025"),
                                                                                          Decimal("0.031")]
    assert AuditEvent.unscoped.filter(action="route.cost").count() == 2


def test_the_carrier_page_checks_settings_as_carriers_load_does_and_keeps_secrets_out_of_them(client, staff, carrier):
    """A password typed into the plain settings is refused (it would be stored as typed, and shown); so are a
    missing required field and an SMPP window out of range; the stored password counts as given."""
    url = reverse("admin:messaging_carrier_change", args=[carrier.pk])
    leaked = client.post(url, _form(carrier, settings='{"host": "127.0.0.1", "port": 2775, "system_id": "acme", '
                                                      '"password": "typed-here"}'))
    assert leaked.status_code == 200 and "password is a secret" in leaked.content.decode()
    missing = client.post(url, _form(carrier, settings='{"host": "127.0.0.1", "port": 2775}'))
    assert missing.status_code == 200 and "missing system_id" in missing.content.decode()
    wide = client.post(url, _form(carrier, settings='{"host": "127.0.0.1", "port": 2775, "system_id": "a", '
                                                    '"window": 5000}'))
    assert wide.status_code == 200 and "window must be a whole number from 1 to 1000" in wide.content.decode()
    carrier.refresh_from_db()
    assert "password" not in carrier.settings and "typed-here" not in str(carrier.settings)
    removed = client.post(url, _form(carrier, new_credentials='{"password": null}'))
    assert removed.status_code == 200 and "missing password" in removed.content.decode()


def test_route_quality_shows_each_windows_delivery_and_error_rates(client, staff, carrier):
    from messaging.routing.models import RouteQuality

    route = Route.objects.create(carrier=carrier, prefix="44", cost=Decimal("0.03"), currency="EUR",
                                 cost_from=timezone.now())
    RouteQuality.objects.create(route=route, window="15m", submits=40, delivered=30, failed=6, errors=4,
                                latency_p50_ms=900, latency_p95_ms=2100)
    page = client.get(reverse("admin:messaging_routequality_changelist")).content.decode()
    assert "Error rate" in page and "10.0%" in page and "83.3%" in page  # 4 of 40 submits; 30 of 36 finished
