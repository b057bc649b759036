"""Country rules as data: the dataset, its loader and overrides, the per-process cache, admin and the API."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent, User
from accounts.services.audit import Actor
from accounts.tests.factories import PASSWORD, TenantFactory, bearer, login_verified, make_api_key
from compliance import countries
from compliance.country_data import (
    DATA_FILE,
    REGIONS,
    RULE_FIELDS,
    country_rule_override,
    country_rule_override_clear,
    country_rules_load,
    dataset_read,
    rule_value_json,
)
from compliance.models import CountryRule
from smsportal.tests import test_schemathesis as full
from smsportal.tests.servers import procfile_server

pytestmark = pytest.mark.django_db

MAJOR = ("US CA MX BR AR CO CL PE GB IE FR DE ES IT NL BE CH AT SE NO DK FI PL PT CZ RO GR TR RU UA IN CN JP KR "
         "SG MY ID TH VN PH AU NZ AE SA IL EG NG KE ZA MA PK BD").split()


def _raw() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def test_it_covers_at_least_45_countries_with_china_and_every_region():
    dataset = dataset_read()
    assert len(dataset.rules) >= 45
    assert set(MAJOR) <= set(dataset.rules)
    for region in REGIONS:
        assert sum(rule["region"] == region for rule in dataset.rules.values()) >= 2, region
    china = dataset.rules["CN"]
    assert china["template_required"] is True and china["signature_required"] == "【】"
    assert china["alphanumeric"] == "not_supported"


def test_it_gives_every_rule_its_source_and_date_and_the_dataset_a_version():
    raw = _raw()
    assert raw["version"] and date.fromisoformat(raw["date"])
    for entry in raw["countries"]:
        assert set(RULE_FIELDS) <= set(entry), entry["iso"]
        assert entry["source"].strip(), entry["iso"]
        assert date.fromisoformat(entry["as_of"]) <= date.fromisoformat(raw["date"]), entry["iso"]


def test_it_carries_the_legal_quiet_hours_presets():
    rules = countries.country_rules()
    us = rules["US"].quiet_hours
    assert (us.start, us.end, us.applies_to) == (time(8), time(21), ("marketing",)) and "TCPA" in us.law
    assert us.window("sun") == (time(8), time(21))
    france = rules["FR"].quiet_hours
    assert france.window("sun") is None and france.holidays is True
    assert france.window("mon") == (time(8), time(20))
    assert rules["ZA"].quiet_hours.window("sat") == (time(9), time(13))
    assert rules["FR"].marketing_opt_out_text == "STOP au 36xxx" and rules["FR"].marketing_opt_out_keyword == "STOP"
    assert rules["US"].alphanumeric == "not_supported" and rules["CA"].alphanumeric == "not_supported"


def test_it_is_loaded_by_the_migration():
    assert CountryRule.objects.count() == len(dataset_read().rules)
    assert CountryRule.objects.get(iso="CN").dataset_version == _raw()["version"]


def test_it_loads_idempotently():
    CountryRule.objects.all().delete()
    first = country_rules_load()
    assert first.created == len(dataset_read().rules) and first.updated == 0
    rows = list(CountryRule.objects.values())
    second = country_rules_load()
    assert (second.created, second.updated, second.unchanged) == (0, 0, first.created)
    assert list(CountryRule.objects.values()) == rows


def test_it_keeps_an_override_across_a_reload_and_refreshes_the_rest(tmp_path: Path):
    country_rule_override(iso="DE", changes={"max_parts": 3}, reason="carrier limit", actor=Actor())
    raw = _raw()
    raw["version"] = "9999.01.01"
    for entry in raw["countries"]:
        if entry["iso"] == "DE":
            entry["max_parts"], entry["two_way"] = 7, False
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    result = country_rules_load(path=path)

    row = CountryRule.objects.get(iso="DE")
    assert (row.max_parts, row.two_way, row.overridden, row.dataset_version) == (3, False, True, "9999.01.01")
    assert result.overridden == 1
    assert countries.country_rule("de").max_parts == 3


def test_it_puts_the_dataset_back_when_an_override_is_cleared():
    original = CountryRule.objects.get(iso="GB").max_parts
    country_rule_override(iso="GB", changes={"max_parts": 2}, reason="test", actor=Actor())
    country_rule_override_clear(iso="GB", actor=Actor())
    row = CountryRule.objects.get(iso="GB")
    assert (row.max_parts, row.overridden, row.overrides) == (original, False, {})
    assert AuditEvent.unscoped.filter(action="country_rule.override_cleared").get().changes["before"] == {
        "max_parts": 2}


def test_it_refuses_a_bad_dataset_and_writes_nothing(tmp_path: Path):
    raw = _raw()
    raw["countries"][0]["alphanumeric"] = "sometimes"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    before = list(CountryRule.objects.values())
    with pytest.raises(ValueError, match="alphanumeric"):
        country_rules_load(path=path)
    assert list(CountryRule.objects.values()) == before


def test_it_loads_from_the_command():
    CountryRule.objects.filter(iso__in=["CN", "US"]).delete()
    call_command("country_rules_load", stdout=open("/dev/null", "w"))
    assert CountryRule.objects.filter(iso__in=["CN", "US"]).count() == 2


def test_it_audits_an_override_with_before_and_after():
    country_rule_override(iso="FR", changes={"max_parts": 4, "risk": "medium"}, reason="operator notice",
                          actor=Actor())
    event = AuditEvent.unscoped.get(action="country_rule.overridden")
    assert event.changes["before"] == {"max_parts": 10, "risk": "low"}
    assert event.changes["after"] == {"max_parts": 4, "risk": "medium"}
    assert event.changes["reason"] == "operator notice" and event.tenant is None


def test_it_refuses_an_override_the_dataset_would_refuse():
    with pytest.raises(ValueError, match="risk"):
        country_rule_override(iso="FR", changes={"risk": "extreme"}, reason="x", actor=Actor())
    assert CountryRule.objects.get(iso="FR").risk == "low"


def test_it_answers_from_the_cache_without_a_query_when_warm():
    countries.country_rules()
    with CaptureQueriesContext(connection) as queries:
        assert countries.country_rule("CN").signature_required == "【】"
        assert countries.country_rule("cn").iso == "CN"
        assert countries.country_rule("XX") is None
        assert len(countries.country_rules()) >= 45
        assert countries.country_rules_meta().version
    assert len(queries) == 0


def test_it_reloads_after_a_save_and_after_the_ttl(settings, monkeypatch):
    assert countries.country_rule("JP").max_parts == 10
    row = CountryRule.objects.get(iso="JP")
    row.max_parts = 6
    row.save()  # post_save clears this process's cache
    assert countries.country_rule("JP").max_parts == 6

    CountryRule.objects.filter(iso="JP").update(max_parts=5)  # another process's write: no signal here
    assert countries.country_rule("JP").max_parts == 6
    now = countries.clock.monotonic()
    monkeypatch.setattr(countries.clock, "monotonic", lambda: now + settings.COMPLIANCE_CACHE_SECONDS)
    assert countries.country_rule("JP").max_parts == 5


def test_it_knows_the_country_of_a_number():
    assert countries.country_of("+14155550100") == "US"
    assert countries.country_of("+14165550100") == "CA"
    assert countries.country_of("+8613800138000") == "CN"
    assert countries.country_of("+447400123456") == "GB"
    assert countries.country_of("+447911123456") == "GG"  # phonenumbers: a Guernsey mobile range
    assert countries.country_of("+4470") == "GB"  # no region of its own: the country code's main one
    assert countries.country_of("not a number") == ""



# --- The API --------------------------------------------------------------------------------------------------


def test_it_lists_every_country_with_the_version_and_change_date(world, api):
    answer = api.get("/v1/countries", **world.a.auth)
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == _raw()["version"] and body["changed"] == _raw()["date"]
    assert len(body["data"]) == CountryRule.objects.count() >= 45
    china = next(rule for rule in body["data"] if rule["iso"] == "CN")
    assert china["signature_required"] == "【】" and china["template_required"] is True
    assert china["quiet_hours"] is None and china["source"] and china["as_of"] == "2025-06-30"
    us = next(rule for rule in body["data"] if rule["iso"] == "US")
    assert us["quiet_hours"]["start"] == "08:00" and us["quiet_hours"]["end"] == "21:00"
    assert us["quiet_hours"]["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert us["quiet_hours"]["applies_to"] == ["marketing"] and "TCPA" in us["quiet_hours"]["law"]


def test_it_shows_one_country_in_any_case(world, api):
    upper = api.get("/v1/countries/FR", **world.a.auth)
    lower = api.get("/v1/countries/fr", **world.a.auth)
    assert upper.status_code == lower.status_code == 200
    assert upper.json() == lower.json()
    france = upper.json()
    assert france["iso"] == "FR" and france["quiet_hours"]["day_overrides"] == {}
    assert france["quiet_hours"]["holidays"] is True and "sun" not in france["quiet_hours"]["days"]
    assert set(france) == {"iso", *RULE_FIELDS, "marketing_opt_out_keyword", "overridden", "changed",
                           "dataset_version"}
    assert api.get("/v1/countries/ZA", **world.a.auth).json()["quiet_hours"]["day_overrides"] == {
        "sat": {"start": "09:00", "end": "13:00"}}


@pytest.mark.parametrize("iso", ["XX", "zz", "USA", "1", "%C3%A9"])
def test_it_answers_404_json_for_an_unknown_country(world, api, iso):
    answer = api.get(f"/v1/countries/{iso}", **world.a.auth)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found" and answer.json()["error"]["field"] == "iso"


def test_it_needs_a_key_but_no_scope(world, api):
    assert api.get("/v1/countries").status_code == 401
    assert api.get("/v1/countries/US").status_code == 401
    _key, secret = make_api_key(world.b.tenant, scopes=["messages:read"], name="read only")
    assert api.get("/v1/countries/US", **bearer(secret)).status_code == 200
    assert api.get("/v1/countries", **bearer(secret)).status_code == 200


def test_it_publishes_an_override_and_its_date(world, api):
    country_rule_override(iso="DE", changes={"max_parts": 4}, reason="operator notice", actor=Actor())
    today = CountryRule.objects.get(iso="DE").overridden_at.date().isoformat()

    germany = api.get("/v1/countries/de", **world.a.auth).json()
    listing = api.get("/v1/countries", **world.a.auth).json()

    assert (germany["max_parts"], germany["overridden"], germany["changed"]) == (4, True, today)
    assert listing["changed"] == max(today, _raw()["date"])
    assert next(r for r in listing["data"] if r["iso"] == "DE")["max_parts"] == 4


def test_it_lists_without_a_query_per_country(world, api, django_assert_max_num_queries):
    api.get("/v1/countries", **world.a.auth)  # warms the rules cache (and the key's own reads)
    with django_assert_max_num_queries(8) as queries:
        api.get("/v1/countries", **world.a.auth)
    assert not any("compliance_countryrule" in q["sql"] for q in queries.captured_queries)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_it_conforms_to_its_schema_under_schemathesis(tmp_path):
    """The full run (smsportal/tests/test_schemathesis.py) covers these too; this one runs only them, quickly."""
    country_rules_load()  # an earlier transactional test may have flushed the migration's rows
    country_rule_override(iso="DE", changes={"max_parts": 4}, reason="schemathesis", actor=Actor())
    own, secret = make_api_key(TenantFactory(), scopes=["messages:read"], name="schemathesis")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(full.HOOKS), "SCHEMATHESIS_TOKEN": secret,
           "SCHEMATHESIS_OWN_KEY_ID": own.public_id, "SCHEMATHESIS_SPARE_KEY_ID": own.public_id}
    report_path = tmp_path / "report.json"
    with procfile_server(env={"API_RATE_LIMIT": "100000/s"}, log=tmp_path / "web.log") as server:
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(full._config(tmp_path)), "run",
             server.url("/v1/openapi.json"), "--include-path-regex", "^/v1/countries", "--checks", "all",
             "--max-examples", "50", "--seed", str(full.SEED), "--workers", "1", "--generation-database", "none",
             *full.GENERATION, "--request-timeout", "20", "--report", "json", "--report-json-path",
             str(report_path), "--no-color"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    report = json.loads(report_path.read_text())
    assert report["operations"]["tested"] == 2, full._figures(report)
    assert run.returncode == 0, f"{full._figures(report)}\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}"


# --- Admin ----------------------------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


def _form(row: CountryRule, **changes) -> dict:
    data = {name: rule_value_json(name, getattr(row, name)) for name in RULE_FIELDS}
    data["quiet_hours"] = json.dumps(data["quiet_hours"])
    data.update(changes)
    for name in ("numeric_sender", "two_way", "template_required", "approval_required"):
        if data[name] is True:
            data[name] = "on"
        else:
            data.pop(name)
    return {k: ("" if v is None else v) for k, v in data.items()}


def test_it_overrides_a_country_in_admin_audited_and_visible_in_the_api(client, staff, world, api):
    row = CountryRule.objects.get(iso="GB")
    url = reverse("admin:compliance_countryrule_change", args=[row.pk])
    page = client.get(url)
    assert page.status_code == 200 and row.source.split(";")[0][:40] in page.content.decode()

    answer = client.post(url, _form(row, max_parts=3, risk="medium", change_reason="carrier notice"))

    assert answer.status_code == 302, answer.content.decode()[:2000]
    row.refresh_from_db()
    assert (row.max_parts, row.risk, row.overridden, row.overrides) == (3, "medium", True,
                                                                        {"max_parts": 3, "risk": "medium"})
    event = AuditEvent.unscoped.get(action="country_rule.overridden")
    assert event.actor == staff and event.changes["before"] == {"max_parts": 10, "risk": "low"}
    assert event.changes["reason"] == "carrier notice"
    assert api.get("/v1/countries/gb", **world.a.auth).json()["max_parts"] == 3


def test_it_refuses_an_admin_override_without_a_reason_or_with_bad_quiet_hours(client, staff):
    row = CountryRule.objects.get(iso="GB")
    url = reverse("admin:compliance_countryrule_change", args=[row.pk])
    no_reason = client.post(url, _form(row, max_parts=3))
    bad_hours = client.post(url, _form(row, quiet_hours='{"start": "25:00"}', change_reason="x"))
    assert no_reason.status_code == bad_hours.status_code == 200  # the form again, with its errors
    assert "quiet_hours" in bad_hours.content.decode()
    row.refresh_from_db()
    assert (row.max_parts, row.overridden) == (10, False)
    assert not AuditEvent.unscoped.filter(action="country_rule.overridden").exists()


def test_it_clears_overrides_from_the_admin_list(client, staff):
    country_rule_override(iso="NL", changes={"max_parts": 2}, reason="x", actor=Actor())
    row = CountryRule.objects.get(iso="NL")
    answer = client.post(reverse("admin:compliance_countryrule_changelist"),
                         {"action": "clear_overrides", "_selected_action": [row.pk]})
    assert answer.status_code == 302
    row.refresh_from_db()
    assert (row.max_parts, row.overridden) == (10, False)
    assert AuditEvent.unscoped.get(action="country_rule.override_cleared").actor == staff
