"""Country rules as data: the dataset, its loader and overrides, the per-process cache, admin and the API."""
from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from accounts.services.audit import Actor
from compliance import countries
from compliance.country_data import (
    DATA_FILE,
    REGIONS,
    RULE_FIELDS,
    country_rule_override,
    country_rule_override_clear,
    country_rules_load,
    dataset_read,
)
from compliance.models import CountryRule

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
