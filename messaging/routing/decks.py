"""Rate decks: a carrier's costs by destination, from CSV (`manage.py routes_import CARRIER FILE.csv`, admin).

Columns `prefix,country,operator,cost,currency,effective_from`; `effective_from` blank means now, a date means
its midnight UTC. Each row is a dated cost of the route (carrier, prefix, operator), kept as history
(RouteCost); a route the deck names for the first time is created. A cost dated in the future takes over at
its time: `route_costs_apply` (beat, every minute) writes the cost in force into the route, and a route whose
only costs are in the future is not routed until then. The whole deck is checked before anything is written.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from messaging.routing import cache
from messaging.routing.models import Carrier, Route, RouteCost

COLUMNS = ("prefix", "country", "operator", "cost", "currency", "effective_from")
MAX_ROWS = 200_000


class DeckError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class DeckRow:
    prefix: str
    country: str
    operator: str
    cost: Decimal
    currency: str
    effective_from: datetime


@dataclass(frozen=True)
class DeckResult:
    routes_created: int
    costs_added: int
    costs_unchanged: int
    in_force_now: int  # routes whose cost changed at once (the rest wait for their date)


def deck_parse(text: str, *, now: datetime | None = None) -> list[DeckRow]:
    now = now or timezone.now()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or [f.strip().lower() for f in reader.fieldnames] != list(COLUMNS):
        raise DeckError(1, f"the header must be {','.join(COLUMNS)}")
    rows, seen = [], set()
    for line, record in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise DeckError(line, f"a deck holds at most {MAX_ROWS} rows")
        row = _row(line, {k.strip().lower(): (v or "").strip() for k, v in record.items() if k is not None}, now)
        key = (row.prefix, row.operator, row.effective_from)
        if key in seen:
            raise DeckError(line, f"+{row.prefix} {row.operator} is listed twice for {row.effective_from:%Y-%m-%d %H:%M}")
        seen.add(key)
        rows.append(row)
    return rows


def _row(line: int, record: dict[str, str], now: datetime) -> DeckRow:
    prefix = record["prefix"].removeprefix("+")
    if not prefix.isdigit() or len(prefix) > 15:
        raise DeckError(line, "prefix must be the digits an E.164 number starts with")
    try:
        cost = Decimal(record["cost"])
    except InvalidOperation:
        raise DeckError(line, f"cost {record['cost']!r} is not a decimal number") from None
    if not cost.is_finite() or cost < 0 or cost.as_tuple().exponent < -6:
        raise DeckError(line, "cost must be 0 or more, with at most 6 decimal places")
    currency = record["currency"].upper()
    if len(currency) != 3 or not currency.isalpha():
        raise DeckError(line, "currency must be a 3-letter code")
    country = record["country"].upper()
    if country and (len(country) != 2 or not country.isalpha()):
        raise DeckError(line, "country must be an ISO 3166 alpha-2 code, or blank")
    return DeckRow(prefix, country, record["operator"], cost, currency, _when(line, record["effective_from"], now))


def _when(line: int, value: str, now: datetime) -> datetime:
    if not value:
        return now
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise DeckError(line, f"effective_from {value!r} is not a date (2027-01-01) or a date and time")
        moment = datetime.combine(day, time(), tzinfo=UTC)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def deck_import(*, carrier: Carrier, rows: list[DeckRow], source: str = "") -> DeckResult:
    """Record the deck's costs for `carrier` in one transaction; then apply the ones in force now."""
    created = added = unchanged = 0
    with transaction.atomic():
        routes = {(r.prefix, r.operator): r for r in Route.objects.select_for_update().filter(carrier=carrier)}
        for row in rows:
            route = routes.get((row.prefix, row.operator))
            if route is None:
                route = routes[row.prefix, row.operator] = Route.objects.create(
                    carrier=carrier, prefix=row.prefix, operator=row.operator, country=row.country, cost=row.cost,
                    currency=row.currency)
                created += 1
            elif row.country and route.country != row.country:
                Route.objects.filter(pk=route.pk).update(country=row.country)
            _, made = RouteCost.objects.update_or_create(
                route=route, effective_from=row.effective_from,
                defaults={"cost": row.cost, "currency": row.currency, "source": source or "routes_import"})
            added += made
            unchanged += not made
        applied = route_costs_apply(carrier=carrier)
    return DeckResult(routes_created=created, costs_added=added, costs_unchanged=unchanged, in_force_now=applied)


def route_cost_set(route: Route, *, source: str, now: datetime | None = None) -> None:
    """The cost now on `route` (created, or its cost or currency changed by hand, in admin or by
    carriers_load): in force from now, and one more line of its history. Without it a new route would not be
    routed (no `cost_from`) and `route_costs_apply` would put the deck's last cost back within a minute."""
    now = now or timezone.now()
    Route.objects.filter(pk=route.pk).update(cost_from=now)
    route.cost_from = now
    RouteCost.objects.update_or_create(route=route, effective_from=now,
                                       defaults={"cost": route.cost, "currency": route.currency, "source": source})
    cache.routing_cache_clear()


def route_costs_apply(*, carrier: Carrier | None = None, now: datetime | None = None) -> int:
    """Write into each route the cost in force at `now` (its latest RouteCost dated by then); returns how many
    routes changed. Beat runs it every minute, so a deck dated in the future takes over at its time."""
    now = now or timezone.now()
    latest = RouteCost.objects.filter(route=OuterRef("pk"), effective_from__lte=now).order_by("-effective_from")
    routes = Route.objects.all() if carrier is None else Route.objects.filter(carrier=carrier)
    changed = 0
    for route in routes.annotate(in_force_cost=Subquery(latest.values("cost")[:1]),
                                 in_force_currency=Subquery(latest.values("currency")[:1]),
                                 in_force_from=Subquery(latest.values("effective_from")[:1])):
        if route.in_force_from is None:
            continue
        if (route.cost, route.currency, route.cost_from) != (route.in_force_cost, route.in_force_currency,
                                                            route.in_force_from):
            Route.objects.filter(pk=route.pk).update(cost=route.in_force_cost, currency=route.in_force_currency,
                                                     cost_from=route.in_force_from)
            changed += 1
    if changed:
        cache.routing_cache_clear()
    return changed


__all__ = ["COLUMNS", "DeckError", "DeckResult", "DeckRow", "deck_import", "deck_parse", "route_cost_set",
           "route_costs_apply"]
