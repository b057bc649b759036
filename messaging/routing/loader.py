"""`manage.py carriers_load FILE`: carriers and routes from a JSON (or YAML) file, an idempotent upsert by name.

A carrier is matched by `name`, a route by (carrier, prefix, operator). What the file does not name is left as
it is (an account manager disables or deletes in admin). The whole file is checked before anything is
written, and it is written in one transaction: a file with one bad entry changes nothing. A dry run does
the same work and rolls it back, so what it prints is exactly what a real run would change.

Secrets (SECRET_FIELDS, flattened: `auth.token` -> token, `auth.password` -> password, `receipt.secret`
-> receipt_secret) are encrypted at rest and never printed: a change to one shows as "password changed".
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from messaging.carriers.config import SECRET_FIELDS
from messaging.routing import cache
from messaging.routing.credentials import credentials_decrypt, credentials_encrypt
from messaging.routing.decks import route_cost_set
from messaging.routing.models import MESSAGE_TYPES, SENDER_TYPES, Carrier, Route

# What each kind (and HTTP preset) must have, secrets included.
REQUIRED = {
    ("smpp", ""): ("host", "port", "system_id", "password"),
    ("http", "twilio"): ("base_url", "account_sid", "auth_token"),
    ("http", "telnyx"): ("base_url", "api_key", "public_key"),
    ("http", "generic"): ("url", "body", "response"),
    ("simulator", ""): (),
}
SMPP_DEFAULTS = {"system_type": "", "bind": "transceiver", "sessions": 1, "window": 10, "max_mps": 0,
                 "enquire_link_seconds": 30, "tls": False, "default_data_coding": 0,
                 "source_ton_npi": {"alphanumeric": [5, 0], "international": [1, 1], "short_code": [3, 0]}}


class CarriersFileError(ValueError):
    """The file is not a valid carriers file: `where` names the entry, the message says what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


@dataclass
class Change:
    what: str  # "carrier eu-smpp-1", "route eu-smpp-1 +44"
    action: str  # created | updated | unchanged
    fields: list[str] = field(default_factory=list)  # names only: never a secret's value

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action:9s} {self.what}{detail}"


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


def carriers_load(document: Any, *, dry_run: bool = False, source: str = "") -> list[Change]:
    """Upsert the carriers and routes of `document` (the parsed file); the changes, in file order."""
    carriers, routes = _document_parts(document)
    parsed = [_carrier_parse(entry, index) for index, entry in enumerate(carriers)]
    names = {name for name, *_ in parsed}
    changes: list[Change] = []
    try:
        with transaction.atomic():
            for name, kind, settings, secrets in parsed:
                changes.append(_carrier_upsert(name, kind, settings, secrets))
            known = {c.name: c for c in Carrier.objects.filter(name__in=names | {r.get("carrier") for r in routes
                                                                                  if isinstance(r, dict)})}
            for index, entry in enumerate(routes):
                changes.append(_route_upsert(_route_parse(entry, index, known), source=source))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    if not dry_run:
        cache.routing_cache_clear()
    return changes


def _document_parts(document: Any) -> tuple[list, list]:
    if not isinstance(document, dict):
        raise CarriersFileError("file", 'expected an object with "carriers" and "routes" lists')
    carriers, routes = document.get("carriers", []), document.get("routes", [])
    if not isinstance(carriers, list) or not isinstance(routes, list):
        raise CarriersFileError("file", '"carriers" and "routes" must be lists')
    unknown = set(document) - {"carriers", "routes"}
    if unknown:
        raise CarriersFileError("file", f"unknown key {sorted(unknown)[0]!r}")
    return carriers, routes


def _carrier_parse(entry: Any, index: int) -> tuple[str, str, dict, dict]:
    where = f"carriers[{index}]"
    if not isinstance(entry, dict):
        raise CarriersFileError(where, "expected an object")
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise CarriersFileError(where, "name must be letters, digits, - or _")
    where = f"carrier {name}"
    if kind not in Carrier.Kind.values:
        raise CarriersFileError(where, f"kind must be one of {', '.join(Carrier.Kind.values)}")
    preset = entry.get("preset", "") if kind == "http" else ""
    if (kind, preset) not in REQUIRED:
        raise CarriersFileError(where, "preset must be twilio, telnyx or generic")
    settings, secrets = _secrets_split(entry)
    missing = [f for f in REQUIRED[kind, preset] if f not in settings and f not in secrets]
    if kind == "http" and preset == "generic" and "token" not in secrets and settings.get("auth", {}).get("type") == "bearer":
        missing.append("auth.token")
    if missing:
        raise CarriersFileError(where, f"missing {', '.join(missing)}")
    if kind == "smpp":
        settings = {**copy.deepcopy(SMPP_DEFAULTS), **settings}
        _smpp_check(where, settings)
    settings.pop("name"), settings.pop("kind")
    return name, kind, settings, secrets


def carrier_settings_check(*, name: str, kind: str, settings: Any, secret_names: set[str]) -> None:
    """What carriers_load checks of a carrier, for one saved in admin: its kind's required fields (a secret
    counts when it is stored or being given, `secret_names`), SMPP's ranges, and no secret among the plain
    settings (those are stored as they are typed; secrets only encrypted, in the credentials)."""
    where = f"carrier {name}"
    if not isinstance(settings, dict):
        raise CarriersFileError(where, "settings must be a JSON object")
    _plain, typed = _secrets_split({**settings, "name": name})
    if typed:
        raise CarriersFileError(where, f"{', '.join(sorted(typed))} is a secret: give it in the credentials field, "
                                       "where it is stored encrypted, not in the settings")
    _carrier_parse({**settings, "name": name, "kind": kind, **dict.fromkeys(secret_names, "-")}, 0)


def _secrets_split(entry: dict) -> tuple[dict, dict]:
    """The entry without its secrets, and the secrets by their flat names."""
    settings, secrets = copy.deepcopy(entry), {}
    for key in SECRET_FIELDS & set(settings):
        secrets[key] = settings.pop(key)
    for parent, key, flat in (("auth", "token", "token"), ("auth", "password", "password"),
                              ("receipt", "secret", "receipt_secret")):
        if isinstance(settings.get(parent), dict) and key in settings[parent]:
            secrets[flat] = settings[parent].pop(key)
    bad = [name for name, value in secrets.items() if not isinstance(value, str)]
    if bad:
        raise CarriersFileError(f"carrier {entry.get('name')}", f"{bad[0]} must be a string")
    return settings, secrets


def _smpp_check(where: str, settings: dict) -> None:
    checks = {"port": (int, 1, 65535), "sessions": (int, 1, 64), "window": (int, 1, 1000), "max_mps": (int, 0, 100_000),
              "enquire_link_seconds": (int, 5, 3600), "default_data_coding": (int, 0, 255)}
    for name, (kind, low, high) in checks.items():
        value = settings.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
            raise CarriersFileError(where, f"{name} must be a whole number from {low} to {high}")
    if settings["bind"] not in ("transceiver", "transmitter", "receiver"):
        raise CarriersFileError(where, "bind must be transceiver, transmitter or receiver")


def _carrier_upsert(name: str, kind: str, settings: dict, secrets: dict) -> Change:
    carrier = Carrier.objects.select_for_update().filter(name=name).first()
    if carrier is None:
        Carrier.objects.create(name=name, kind=kind, settings=settings, credentials_encrypted=credentials_encrypt(secrets))
        return Change(f"carrier {name}", "created")
    changed = [key for key in sorted(set(carrier.settings) | set(settings)) if carrier.settings.get(key) != settings.get(key)]
    stored = credentials_decrypt(carrier.credentials_encrypted)
    changed += [f"{key} changed" for key in sorted(set(stored) | set(secrets)) if stored.get(key) != secrets.get(key)]
    if carrier.kind != kind:
        changed.insert(0, "kind")
    if not changed:
        return Change(f"carrier {name}", "unchanged")
    carrier.kind, carrier.settings, carrier.credentials_encrypted = kind, settings, credentials_encrypt(secrets)
    carrier.save()
    return Change(f"carrier {name}", "updated", changed)


@dataclass(frozen=True)
class _RouteRow:
    carrier: Carrier
    prefix: str
    operator: str
    values: dict  # country, cost, currency, priority, message_types, sender_types


def _route_parse(entry: Any, index: int, carriers: dict[str, Carrier]) -> _RouteRow:
    where = f"routes[{index}]"
    if not isinstance(entry, dict):
        raise CarriersFileError(where, "expected an object")
    unknown = set(entry) - {"carrier", "prefix", "country", "operator", "cost", "currency", "priority",
                            "message_types", "sender_types"}
    if unknown:
        raise CarriersFileError(where, f"unknown key {sorted(unknown)[0]!r}")
    carrier = carriers.get(entry.get("carrier"))
    if carrier is None:
        raise CarriersFileError(where, f"no carrier named {entry.get('carrier')!r} (in this file or loaded before)")
    prefix = str(entry.get("prefix", "")).removeprefix("+")
    if not prefix.isdigit() or len(prefix) > 15:
        raise CarriersFileError(where, "prefix must be the digits an E.164 number starts with")
    cost = _cost(where, entry.get("cost"))
    currency = entry.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise CarriersFileError(where, "currency must be a 3-letter code")
    priority = entry.get("priority", 1)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1000:
        raise CarriersFileError(where, "priority must be a whole number from 0 to 1000")
    types = _choices(where, "message_types", entry.get("message_types", []), MESSAGE_TYPES)
    senders = _choices(where, "sender_types", entry.get("sender_types", []), SENDER_TYPES)
    return _RouteRow(carrier, prefix, str(entry.get("operator", "")), {
        "country": str(entry.get("country", "")).upper(), "cost": cost, "currency": currency.upper(),
        "priority": priority, "message_types": types, "sender_types": senders})


def _cost(where: str, value: Any) -> Decimal:
    try:
        cost = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise CarriersFileError(where, "cost must be a decimal number, as a string (\"0.0310\")") from None
    if not cost.is_finite() or cost < 0 or cost.as_tuple().exponent < -6:
        raise CarriersFileError(where, "cost must be 0 or more, with at most 6 decimal places")
    return cost


def _choices(where: str, name: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or any(v not in allowed for v in value):
        raise CarriersFileError(where, f"{name} must be a list of {', '.join(allowed)}")
    return sorted(set(value))


def _route_upsert(row: _RouteRow, *, source: str) -> Change:
    what = f"route {row.carrier.name} +{row.prefix}{' ' + row.operator if row.operator else ''}"
    route = Route.objects.select_for_update().filter(carrier=row.carrier, prefix=row.prefix, operator=row.operator).first()
    now = timezone.now()
    if route is None:
        route = Route.objects.create(carrier=row.carrier, prefix=row.prefix, operator=row.operator, **row.values)
        route_cost_set(route, source=source or "carriers_load", now=now)
        return Change(what, "created")
    changed = [key for key, value in row.values.items() if getattr(route, key) != value]
    if not changed:
        return Change(what, "unchanged")
    for key, value in row.values.items():
        setattr(route, key, value)
    route.save()
    if "cost" in changed or "currency" in changed:
        route_cost_set(route, source=source or "carriers_load", now=now)
    return Change(what, "updated", changed)
