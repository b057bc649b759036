"""The country-rules dataset (compliance/data/country_rules.json): reading and checking it, loading it into
CountryRule rows, and account managers' overrides of a country (audited).

Overrides survive a reload: a row's `overrides` holds the fields an account manager set, and the loader writes
the dataset's values and then lays those over them. So a new dataset version refreshes every field nobody
overrode, and an override stays until an account manager clears it (country_rule_override_clear), which puts
the dataset's values back.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from compliance import countries
from compliance.models import CountryRule

DATA_FILE = Path(__file__).resolve().parent / "data" / "country_rules.json"

ALPHANUMERIC = ("allowed", "registration_required", "not_supported")
RISKS = ("low", "medium", "high")
REGIONS = ("north_america", "latin_america", "europe", "asia_pacific", "middle_east", "africa")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MESSAGE_TYPES = ("otp", "transactional", "marketing")
# The fields of a rule, as the dataset and the API name them; all of them an account manager may override.
RULE_FIELDS = ("name", "region", "alphanumeric", "numeric_sender", "two_way", "registration", "template_required",
               "signature_required", "marketing_opt_out_text", "marketing_opt_out_keyword", "quiet_hours",
               "max_parts", "risk", "approval_required", "source", "as_of")
# Text fields the model stores as "" for "none" (the dataset and the API say null).
_NULLABLE_TEXT = ("signature_required", "marketing_opt_out_text", "marketing_opt_out_keyword")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@dataclass(frozen=True)
class Dataset:
    version: str
    date: date
    rules: dict[str, dict[str, Any]]  # iso -> model field values


@dataclass(frozen=True)
class LoadResult:
    created: int
    updated: int
    unchanged: int
    overridden: int  # rows whose account-manager overrides were laid over the dataset again
    version: str


def dataset_read(*, path: Path = DATA_FILE) -> Dataset:
    """The dataset at `path`, checked. Raises ValueError naming the country and field at fault."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("countries"), list):
        raise ValueError("the dataset must be an object with a list of countries")
    version, when = raw.get("version"), _date(raw.get("date"), "date")
    if not isinstance(version, str) or not version:
        raise ValueError("the dataset needs a version")
    rules: dict[str, dict[str, Any]] = {}
    for entry in raw["countries"]:
        iso = entry.get("iso") if isinstance(entry, dict) else None
        if not isinstance(iso, str) or not re.fullmatch(r"[A-Z]{2}", iso):
            raise ValueError(f"country {iso!r}: iso must be two upper-case letters")
        if iso in rules:
            raise ValueError(f"country {iso}: listed twice")
        rules[iso] = rule_fields_check(entry, iso=iso)
    return Dataset(version=version, date=when, rules=rules)


def rule_fields_check(entry: dict[str, Any], *, iso: str, partial: bool = False) -> dict[str, Any]:
    """A rule's fields as the model stores them, checked (the dataset's or an override's: `partial` allows a
    subset). Raises ValueError."""
    missing = [] if partial else [f for f in RULE_FIELDS if f not in entry]
    unknown = [f for f in entry if f not in RULE_FIELDS and f != "iso"]
    if missing or unknown:
        raise ValueError(f"country {iso}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else [])))
    out: dict[str, Any] = {}
    for name, value in entry.items():
        if name != "iso":
            out[name] = _field(name, value, iso=iso)
    return out


def _field(name: str, value: Any, *, iso: str) -> Any:
    def bad(why: str) -> ValueError:
        return ValueError(f"country {iso}: {name} {why}")

    if name in ("numeric_sender", "two_way", "template_required", "approval_required"):
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if name == "alphanumeric" and value not in ALPHANUMERIC:
        raise bad(f"must be one of {', '.join(ALPHANUMERIC)}")
    if name == "risk" and value not in RISKS:
        raise bad(f"must be one of {', '.join(RISKS)}")
    if name == "region" and value not in REGIONS:
        raise bad(f"must be one of {', '.join(REGIONS)}")
    if name == "max_parts":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 255:
            raise bad("must be a whole number from 1 to 255")
        return value
    if name == "as_of":
        return _date(value, f"country {iso}: as_of")
    if name == "quiet_hours":
        return None if value is None else _quiet_hours(value, bad)
    if name in _NULLABLE_TEXT:
        if value is not None and not isinstance(value, str):
            raise bad("must be text or null")
        return value or ""
    if not isinstance(value, str) or (name in ("name", "source") and not value.strip()):
        raise bad("must be text" + (" and not empty" if name in ("name", "source") else ""))
    return value


def _quiet_hours(value: Any, bad) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad("must be an object or null")
    unknown = set(value) - {"start", "end", "days", "holidays", "applies_to", "law", "day_overrides"}
    if unknown:
        raise bad(f"has unknown keys {', '.join(sorted(unknown))}")
    for key in ("start", "end"):
        if not isinstance(value.get(key), str) or not _HHMM.match(value[key]):
            raise bad(f"{key} must be HH:MM")
    days = value.get("days")
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise bad(f"days must be a list of {', '.join(DAYS)}")
    applies = value.get("applies_to")
    if not isinstance(applies, list) or not applies or any(t not in MESSAGE_TYPES for t in applies):
        raise bad(f"applies_to must be a list of {', '.join(MESSAGE_TYPES)}")
    if not isinstance(value.get("holidays"), bool) or not isinstance(value.get("law"), str):
        raise bad("needs holidays (true: closed on public holidays) and law")
    for day, window in (value.get("day_overrides") or {}).items():
        if day not in DAYS or not isinstance(window, dict) or set(window) != {"start", "end"} or not all(
                isinstance(window[k], str) and _HHMM.match(window[k]) for k in ("start", "end")):
            raise bad("day_overrides must map a day to {start: HH:MM, end: HH:MM}")
    return {"start": value["start"], "end": value["end"], "days": list(days), "holidays": value["holidays"],
            "applies_to": list(applies), "law": value["law"], **(
                {"day_overrides": dict(value["day_overrides"])} if value.get("day_overrides") else {})}


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a date (YYYY-MM-DD)") from None


def quiet_time(value: str) -> time:
    """A quiet-hours "HH:MM" as a time."""
    return time.fromisoformat(value)


def country_rules_write(*, model: type, dataset: Dataset) -> LoadResult:
    """Writes `dataset` into `model`'s rows (CountryRule, or its historical model in a migration: only the fields
    `model` has are written), laying each row's overrides over the dataset's values. Idempotent: a second run
    changes nothing. Countries absent from the dataset are left alone (an account manager may have added one)."""
    names = {f.name for f in model._meta.get_fields()}
    created = updated = unchanged = overridden = 0
    existing = {row.iso: row for row in model.objects.all()}
    for iso, fields in dataset.rules.items():
        row = existing.get(iso)
        values = {**fields, "dataset_version": dataset.version, "dataset_date": dataset.date}
        if row is not None and row.overrides:
            values.update(rule_fields_check(row.overrides, iso=iso, partial=True))
            overridden += 1
        values = {k: v for k, v in values.items() if k in names}
        if row is None:
            model.objects.create(iso=iso, **values)
            created += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            model.objects.filter(pk=row.pk).update(**values, updated_at=timezone.now())
            updated += 1
        else:
            unchanged += 1
    return LoadResult(created=created, updated=updated, unchanged=unchanged, overridden=overridden,
                      version=dataset.version)


def country_rules_load(*, path: Path = DATA_FILE, actor: Actor | None = None) -> LoadResult:
    """Loads the dataset at `path` into CountryRule (see country_rules_write) and clears this process's
    country-rules cache; audited when something changed. Raises ValueError for a bad dataset, writing nothing."""
    dataset = dataset_read(path=path)
    with transaction.atomic():
        result = country_rules_write(model=CountryRule, dataset=dataset)
        if result.created or result.updated:
            audit_record(action="country_rules.loaded", actor=actor or Actor(), changes={
                "version": dataset.version, "created": result.created, "updated": result.updated})
    countries.country_rules_cache_clear()
    return result


def rule_value_json(name: str, value: Any) -> Any:
    """A model field's value as the dataset (and an override, and the API) writes it: dates as YYYY-MM-DD,
    no text as null."""
    if name == "as_of" and isinstance(value, date):
        return value.isoformat()
    if name in _NULLABLE_TEXT:
        return value or None
    return value


def country_rule_override(*, iso: str, changes: dict[str, Any], reason: str, actor: Actor) -> CountryRule:
    """An account manager's override of some of a country's fields (model values), kept across reloads of the
    dataset and audited with the fields' values before and after. Raises CountryRule.DoesNotExist, and
    ValueError for a value the dataset would refuse (nothing written)."""
    after = {name: rule_value_json(name, value) for name, value in changes.items()}
    checked = rule_fields_check(after, iso=iso, partial=True)
    with transaction.atomic():
        row = CountryRule.objects.select_for_update().get(iso=iso)
        before = {name: rule_value_json(name, getattr(row, name)) for name in checked}
        for name, value in checked.items():
            setattr(row, name, value)
        row.overrides = {**row.overrides, **after}
        row.overridden, row.overridden_at, row.override_reason = True, timezone.now(), reason
        row.save()
        audit_record(action="country_rule.overridden", actor=actor, target=row,
                     changes={"iso": iso, "before": before, "after": after, "reason": reason})
    countries.country_rules_cache_clear()
    return row


def country_rule_override_clear(*, iso: str, actor: Actor, path: Path = DATA_FILE) -> CountryRule:
    """Drops the country's overrides and puts the dataset's values back (audited, before and after). Raises
    CountryRule.DoesNotExist; a country the dataset does not list keeps its values and loses only the marker."""
    dataset = dataset_read(path=path)
    with transaction.atomic():
        row = CountryRule.objects.select_for_update().get(iso=iso)
        fields = dataset.rules.get(iso, {})
        names = [name for name in row.overrides if name in fields]
        before = {name: rule_value_json(name, getattr(row, name)) for name in row.overrides}
        for name in names:
            setattr(row, name, fields[name])
        after = {name: rule_value_json(name, getattr(row, name)) for name in row.overrides}
        row.overrides, row.overridden, row.overridden_at, row.override_reason = {}, False, timezone.now(), ""
        row.save()
        audit_record(action="country_rule.override_cleared", actor=actor, target=row,
                     changes={"iso": iso, "before": before, "after": after})
    countries.country_rules_cache_clear()
    return row
