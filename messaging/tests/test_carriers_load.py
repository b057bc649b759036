"""`manage.py carriers_load FILE`: an idempotent upsert by name, a dry run, secrets encrypted and never shown,
and a file with one bad entry changes nothing (messaging/routing/loader.py)."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import AuditEvent
from messaging.models import Carrier, Route, RouteCost
from messaging.routing.credentials import credentials_decrypt

pytestmark = pytest.mark.django_db

SECRETS = ("s3cret-smpp", "tw-token-123", "KEY-telnyx-9", "bearer-xyz", "recv-secret-1")


def _file() -> dict:
    """The issue's example file (every field the carrier kinds need)."""
    return {"carriers": [
        {"name": "eu-smpp-1", "kind": "smpp", "host": "127.0.0.1", "port": 2775, "system_id": "acme",
         "password": SECRETS[0], "system_type": "", "bind": "transceiver", "sessions": 1, "window": 10, "max_mps": 0,
         "enquire_link_seconds": 30, "tls": False,
         "source_ton_npi": {"alphanumeric": [5, 0], "international": [1, 1], "short_code": [3, 0]},
         "default_data_coding": 0},
        {"name": "twilio-main", "kind": "http", "preset": "twilio", "base_url": "https://api.twilio.com",
         "account_sid": "AC123", "auth_token": SECRETS[1]},
        {"name": "telnyx-main", "kind": "http", "preset": "telnyx", "base_url": "https://api.telnyx.com",
         "api_key": SECRETS[2], "public_key": "bm90IGEga2V5"},
        {"name": "partner-x", "kind": "http", "preset": "generic", "url": "https://partner.example/send",
         "method": "POST", "auth": {"type": "bearer", "token": SECRETS[3]},
         "body": {"format": "json", "fields": {"to": "{to}", "from": "{from}", "text": "{text}", "ref": "{id}",
                                                "dlr": "{receipt_url}"}},
         "response": {"message_id": "/id"},
         "receipt": {"message_id": "/ref_id", "status": "/state", "map": {"DELIVERED": "delivered",
                                                                          "FAILED": "undelivered"},
                     "secret": SECRETS[4]}}],
        "routes": [
            {"carrier": "eu-smpp-1", "prefix": "44", "cost": "0.0310", "currency": "EUR", "priority": 1},
            {"carrier": "twilio-main", "prefix": "1", "cost": "0.0079", "currency": "USD", "priority": 1,
             "message_types": ["otp", "transactional"]}]}


def _load(tmp_path, document, *args, name="carriers.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    out = StringIO()
    call_command("carriers_load", str(path), *args, stdout=out)
    return out.getvalue()


def test_the_example_file_loads_every_carrier_and_route(tmp_path):
    output = _load(tmp_path, _file())
    assert sorted(Carrier.objects.values_list("name", "kind")) == [
        ("eu-smpp-1", "smpp"), ("partner-x", "http"), ("telnyx-main", "http"), ("twilio-main", "http")]
    smpp = Carrier.objects.get(name="eu-smpp-1")
    assert smpp.settings["window"] == 10 and smpp.settings["source_ton_npi"]["alphanumeric"] == [5, 0]
    assert credentials_decrypt(smpp.credentials_encrypted) == {"password": SECRETS[0]}
    partner = Carrier.objects.get(name="partner-x")
    assert credentials_decrypt(partner.credentials_encrypted) == {"token": SECRETS[3], "receipt_secret": SECRETS[4]}
    assert partner.settings["auth"] == {"type": "bearer"} and "secret" not in partner.settings["receipt"]
    twilio = Route.objects.get(carrier__name="twilio-main", prefix="1")
    assert (twilio.cost, twilio.currency, twilio.message_types) == (Decimal("0.0079"), "USD", ["otp", "transactional"])
    assert twilio.cost_from is not None and RouteCost.objects.filter(route=twilio).count() == 1
    assert "6 of 6 changed" in output
    assert AuditEvent.unscoped.filter(action="carriers.load").count() == 1


def test_secrets_are_encrypted_at_rest_and_never_printed(tmp_path):
    output = _load(tmp_path, _file())
    with connection.cursor() as cursor:
        cursor.execute("SELECT settings, credentials_encrypted FROM messaging_carrier")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    changed = {**_file()}
    changed["carriers"][0]["password"] = "another-password"
    dry = _load(tmp_path, changed, "--dry-run")
    audit = " ".join(str(e.changes) for e in AuditEvent.unscoped.all())
    for secret in (*SECRETS, "another-password"):
        assert secret not in stored and secret not in output and secret not in dry and secret not in audit
    assert "password changed" in dry


def test_loading_the_same_file_again_changes_nothing(tmp_path):
    _load(tmp_path, _file())
    tokens = dict(Carrier.objects.values_list("name", "credentials_encrypted"))
    output = _load(tmp_path, _file())
    assert "0 of 6 changed" in output and output.count("unchanged") == 6
    assert dict(Carrier.objects.values_list("name", "credentials_encrypted")) == tokens  # not even re-encrypted
    assert RouteCost.objects.count() == 2


def test_a_change_updates_by_name_and_keeps_the_cost_history(tmp_path):
    _load(tmp_path, _file())
    changed = _file()
    changed["carriers"][0]["window"] = 50
    changed["routes"][0]["cost"] = "0.0290"
    output = _load(tmp_path, changed)
    assert "updated   carrier eu-smpp-1 (window)" in output and "updated   route eu-smpp-1 +44 (cost)" in output
    assert Carrier.objects.get(name="eu-smpp-1").settings["window"] == 50
    route = Route.objects.get(carrier__name="eu-smpp-1", prefix="44")
    assert route.cost == Decimal("0.0290")
    assert sorted(RouteCost.objects.filter(route=route).values_list("cost", flat=True)) == [Decimal("0.029"),
                                                                                           Decimal("0.031")]


def test_a_dry_run_prints_what_would_change_and_writes_nothing(tmp_path):
    output = _load(tmp_path, _file(), "--dry-run")
    assert "created   carrier eu-smpp-1" in output and "created   route twilio-main +1" in output
    assert "6 of 6 would change (dry run: nothing written)" in output
    assert not Carrier.objects.exists() and not Route.objects.exists()
    assert not AuditEvent.unscoped.filter(action="carriers.load").exists()


def test_yaml_works_too(tmp_path):
    yaml_text = ("carriers:\n  - {name: sim, kind: simulator}\n"
                 "routes:\n  - {carrier: sim, prefix: '49', cost: '0.05', currency: EUR}\n")
    _load(tmp_path, yaml_text, name="carriers.yaml")
    assert Route.objects.get(carrier__name="sim").prefix == "49"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f["carriers"][0].pop("password"), "carrier eu-smpp-1: missing password"),
    (lambda f: f["carriers"][0].update(window=0), "carrier eu-smpp-1: window must be a whole number from 1 to 1000"),
    (lambda f: f["carriers"][1].update(preset="nexmo"), "carrier twilio-main: preset must be twilio, telnyx or generic"),
    (lambda f: f["carriers"][2].update(kind="fax"), "carrier telnyx-main: kind must be one of"),
    (lambda f: f["routes"][1].update(carrier="nobody"), "routes[1]: no carrier named 'nobody'"),
    (lambda f: f["routes"][0].update(cost="cheap"), "routes[0]: cost must be a decimal number"),
    (lambda f: f["routes"][0].update(prefix="+44abc"), "routes[0]: prefix must be the digits"),
    (lambda f: f["routes"][0].update(message_types=["spam"]), "routes[0]: message_types must be a list of"),
    (lambda f: f.update(extra=1), "file: unknown key 'extra'"),
])
def test_a_bad_entry_is_named_and_nothing_is_written(tmp_path, mutate, message):
    document = _file()
    mutate(document)
    with pytest.raises(CommandError, match=re.escape(message)):
        _load(tmp_path, document)
    assert not Carrier.objects.exists() and not Route.objects.exists()


def test_a_file_that_does_not_parse_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="not valid JSON"):
        _load(tmp_path, "{not json", name="broken.json")
    with pytest.raises(CommandError, match="No such file"):
        call_command("carriers_load", str(tmp_path / "missing.json"))
