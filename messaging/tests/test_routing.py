"""Least-cost routing on live quality (messaging/routing/lcr.py), rate decks (decks.py) and the routing cache."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from messaging.models import Carrier, Route, RouteCircuit, RouteCost, RouteQuality
from messaging.routing.cache import routing_cache_clear, routing_table
from messaging.routing.decks import DeckError, deck_parse, route_costs_apply
from messaging.routing.lcr import routes_plan, sender_type_of

pytestmark = pytest.mark.django_db
US = "+14155550123"


def _route(carrier: str, prefix: str, cost: str, **fields) -> Route:
    kind = fields.pop("kind", Carrier.Kind.SIMULATOR)
    owner, _ = Carrier.objects.get_or_create(name=carrier, defaults={"kind": kind})
    return Route.objects.create(carrier=owner, prefix=prefix, cost=Decimal(cost), currency="USD",
                                cost_from=timezone.now(), **fields)


def _quality(route: Route, delivered: int, failed: int, p50: int | None = 2000, window: str = "15m") -> None:
    RouteQuality.objects.update_or_create(route=route, window=window, defaults={
        "submits": delivered + failed, "delivered": delivered, "failed": failed, "latency_p50_ms": p50})


def _plan(to: str = US, message_type: str = "transactional", sender: str = "Acme", **kw):
    routing_cache_clear()
    return routes_plan(to=to, message_type=message_type, sender=sender, **kw)


def _names(plan) -> list[str]:
    return [c.carrier.name for c in plan.candidates]


def test_each_carriers_longest_prefix_competes():
    _route("a", "1", "0.0100")
    _route("a", "1415", "0.0300")  # a's more specific route wins over its +1 route
    _route("b", "1", "0.0200")
    _route("c", "44", "0.0010")  # another country
    plan = _plan(policy="cheapest")
    assert [(c.carrier.name, c.route.prefix) for c in plan.candidates] == [("b", "1"), ("a", "1415")]
    assert plan.reason == "cheapest of 2 routes"


def test_no_route_is_an_empty_plan_that_says_so():
    _route("c", "44", "0.0010")
    plan = _plan()
    assert plan.candidates == () and plan.reason.startswith("no route for +1415")


def test_routes_that_cannot_carry_the_message_are_dropped():
    _route("otp-only", "1", "0.001", message_types=["otp"])
    _route("numbers-only", "1", "0.002", sender_types=["long_number", "short_code"])
    _route("any", "1", "0.009")
    assert _names(_plan(message_type="marketing", policy="cheapest")) == ["any"]
    assert _names(_plan(message_type="otp", policy="cheapest")) == ["otp-only", "any"]
    assert _names(_plan(sender="+14155550100", policy="cheapest")) == ["numbers-only", "any"]
    assert (sender_type_of("Acme"), sender_type_of("+14155550100"), sender_type_of("12345")) == (
        "alphanumeric", "long_number", "short_code")


def test_a_carrier_down_or_disabled_and_an_open_circuit_are_skipped_and_a_cooled_circuit_takes_trials():
    down = _route("smpp-down", "1", "0.001", kind=Carrier.Kind.SMPP)
    Carrier.objects.filter(pk=down.carrier_id).update(session_state="down")
    off = _route("off", "1", "0.002")
    Carrier.objects.filter(pk=off.carrier_id).update(enabled=False)
    tripped = _route("tripped", "1", "0.003")
    RouteCircuit.objects.create(route=tripped, state=RouteCircuit.State.OPEN, opened_at=timezone.now())
    _route("ok", "1", "0.009")
    assert _names(_plan(policy="cheapest")) == ["ok"]
    with time_machine.travel(timezone.now() + timedelta(seconds=31)), override_settings(ROUTING_CIRCUIT_COOLDOWN_SECONDS=30):
        plan = _plan(policy="cheapest")
    assert _names(plan) == ["tripped", "ok"] and plan.candidates[0].circuit == "half_open"


def test_a_half_open_route_is_first_in_one_plan_of_n_and_last_in_the_others():
    """Trial traffic: while a closed route can carry the message, a half-open one keeps its place in the
    first plan of its half-open spell and one in ROUTING_CIRCUIT_TRIAL_EVERY after, and goes last in the
    others (still a failover); alone, it is always tried."""
    tripped = _route("tripped", "1", "0.001")
    RouteCircuit.objects.create(route=tripped, state=RouteCircuit.State.HALF_OPEN, opened_at=timezone.now())
    with override_settings(ROUTING_CIRCUIT_TRIAL_EVERY=3):
        assert [_names(_plan(policy="cheapest")) for _ in range(3)] == [["tripped"]] * 3  # no other route
        _route("ok", "1", "0.009")
        plans = [_plan(policy="cheapest") for _ in range(6)]
    assert [_names(p)[0] for p in plans] == ["tripped", "ok", "ok", "tripped", "ok", "ok"]
    assert all(_names(p) == ["ok", "tripped"] for p in plans if _names(p)[0] == "ok")
    assert "trial traffic only" in plans[1].reason and "trial" not in plans[0].reason
    RouteCircuit.objects.filter(route=tripped).update(opened_at=timezone.now() + timedelta(seconds=1))
    assert _names(_plan(policy="cheapest"))[0] == "tripped"  # a new half-open spell starts with a trial


def test_balanced_takes_the_cheapest_route_that_delivers():
    cheap_bad = _route("cheap-bad", "1", "0.001")
    _quality(cheap_bad, delivered=50, failed=50)  # 50 %
    mid = _route("mid", "1", "0.005")
    _quality(mid, delivered=97, failed=3)
    slow = _route("slow", "1", "0.004")
    _quality(slow, delivered=99, failed=1, p50=120_000)  # delivers, far too late
    pricey = _route("pricey", "1", "0.009")
    _quality(pricey, delivered=99, failed=1)
    plan = _plan()
    assert plan.policy == "balanced"
    assert _names(plan) == ["mid", "pricey", "slow", "cheap-bad"]  # the two that meet the bar by cost, then the rest
    assert plan.reason == "cheapest of 2 of 4 routes at or above 90.0 % delivery"
    assert [c.quality_class for c in plan.candidates] == ["premium", "premium", "premium", "low"]


def test_otp_defaults_to_quality_and_a_policy_can_be_given():
    best = _route("best", "1", "0.009")
    _quality(best, delivered=99, failed=1, p50=1500)
    fast_enough = _route("good", "1", "0.002")
    _quality(fast_enough, delivered=99, failed=1, p50=3000)
    plan = _plan(message_type="otp")
    assert plan.policy == "quality" and _names(plan) == ["best", "good"]  # same rate: lower latency first
    assert plan.reason == "highest delivery rate (99.0 %) of 2 routes"
    assert _names(_plan(message_type="otp", policy="cheapest")) == ["good", "best"]


@override_settings(ROUTING_MIN_SAMPLE=20)
def test_a_route_with_too_little_traffic_falls_back_to_the_day_then_counts_as_meeting_the_bar():
    young = _route("young", "1", "0.001")
    _quality(young, delivered=2, failed=8)  # 10 finished in 15 min: too few to rate
    _quality(young, delivered=5, failed=10, window="24h")  # 15 in a day: still too few
    measured = _route("measured", "1", "0.005")
    _quality(measured, delivered=95, failed=5)
    plan = _plan()
    assert plan.candidates[0].carrier.name == "young" and plan.candidates[0].quality_class == "unrated"
    # quality: the measured route at or above the bar first, the unrated one after it
    assert _names(_plan(policy="quality")) == ["measured", "young"]
    _quality(young, delivered=10, failed=30, window="24h")  # 40 in a day: rated, 25 %
    assert _names(_plan()) == ["measured", "young"]


def _priced(carrier: str, cost: str, currency: str) -> Route:
    route = _route(carrier, "1", cost)
    Route.objects.filter(pk=route.pk).update(currency=currency)
    return route


@override_settings(ROUTING_COST_CURRENCY="EUR", ROUTING_EXCHANGE_RATES={"USD": Decimal("0.92"), "GBP": Decimal("1.17")})
def test_cheapest_and_balanced_compare_costs_after_converting_them_to_the_cost_currency():
    _priced("usd", "0.0100", "USD")  # 0.0092 EUR
    _priced("gbp", "0.0080", "GBP")  # 0.00936 EUR: the smallest number, not the cheapest
    _priced("eur", "0.0095", "EUR")
    for policy in ("cheapest", "balanced"):
        plan = _plan(policy=policy)
        assert _names(plan) == ["usd", "gbp", "eur"]
        assert [c.cost for c in plan.candidates] == [Decimal("0.009200"), Decimal("0.00936000"), Decimal("0.0095")]
        # the reason names neither a carrier nor a cost
        assert not any(word in plan.reason for word in ("usd", "gbp", "eur", "0.009", "0.008", "EUR", "USD"))


@override_settings(ROUTING_COST_CURRENCY="EUR", ROUTING_EXCHANGE_RATES={"USD": Decimal("0.92")})
def test_a_route_in_a_currency_without_a_rate_is_ranked_after_the_others_and_logged(caplog):
    from messaging.routing import lcr

    lcr._unrated_warned.clear()
    _priced("jpy-cheap", "0.0001", "JPY")
    _priced("jpy-dear", "1.5000", "JPY")
    _priced("usd", "0.0500", "USD")
    with caplog.at_level("WARNING", "smsportal.routing"):
        plan = _plan(policy="cheapest")
        _plan(policy="cheapest")  # logged once, not per message
    assert _names(plan) == ["usd", "jpy-cheap", "jpy-dear"] and plan.candidates[1].cost is None
    assert [r.currency for r in caplog.records if getattr(r, "event", "") == "routing.rate_missing"] == ["JPY"]
    # alone, it still carries the message
    Route.objects.filter(carrier__name="usd").update(enabled=False)
    assert _names(_plan(policy="cheapest")) == ["jpy-cheap", "jpy-dear"]


def test_exchange_rates_come_from_the_environment_as_json_or_pairs():
    from smsportal.settings import exchange_rates_parse

    assert exchange_rates_parse("USD=0.92, gbp=1.17") == {"USD": Decimal("0.92"), "GBP": Decimal("1.17")}
    assert exchange_rates_parse('{"USD": 0.92, "GBP": "1.17"}') == {"USD": Decimal("0.92"), "GBP": Decimal("1.17")}
    assert exchange_rates_parse("") == {}
    for bad in ("USD", "USD=x", "US=1", "USD=0", "USD=-1", '{"USD": "nan"}', "[1]"):
        with pytest.raises(ValueError):
            exchange_rates_parse(bad)


# --- operators (messaging/routing/operators.py) ---------------------------------------------------------------

UK = "+447700900123"
LOOKED_UP: list[str] = []
OPERATORS = {"+447700900123": "234-15", "+447700900456": "234/10", "+447911123456": "234-15", "+447911123457": "234 10"}


def operator_lookup(e164: str) -> str:
    """The ROUTING_OPERATOR_LOOKUP hook of these tests: a fixed table, and every call recorded."""
    LOOKED_UP.append(e164)
    if e164 == "+447700900999":
        raise ConnectionError("the lookup service is down")
    return OPERATORS.get(e164, "")


HOOK = "messaging.tests.test_routing.operator_lookup"


def _uk_routes() -> None:
    _route("a", "44", "0.0300")
    _route("a", "44", "0.0400", operator="234/15")  # a's route for one operator, dearer
    _route("b", "44", "0.0350")
    _route("c", "44", "0.0010", operator="234/15")  # only for that operator


def _uk_plan(number: str = UK):
    from messaging.routing.operators import operators_of

    return _plan(to=number, policy="cheapest", operator=operators_of([number]).get(number, ""))


def test_without_a_lookup_hook_routes_that_name_an_operator_are_not_used():
    _uk_routes()
    plan = _uk_plan()
    assert [(c.carrier.name, c.route.operator) for c in plan.candidates] == [("a", ""), ("b", "")]


@override_settings(ROUTING_OPERATOR_LOOKUP=HOOK)
def test_a_route_for_the_messages_operator_beats_the_same_prefix_without_one():
    _uk_routes()
    _route("a", "447", "0.0500")  # a's longer prefix still wins over its operator route
    _route("b", "447", "0.0500", operator="234/10")  # another operator's: not this message's
    plan = _uk_plan()
    assert [(c.carrier.name, c.route.prefix, c.route.operator) for c in plan.candidates] == [
        ("c", "44", "234/15"), ("b", "44", ""), ("a", "447", "")]
    Route.objects.filter(carrier__name="a", prefix="447").delete()
    assert [(c.carrier.name, c.route.operator) for c in _uk_plan().candidates] == [
        ("c", "234/15"), ("b", ""), ("a", "234/15")]
    # another operator's number: b's 447 route for 234/10, a's and c's operator routes do not apply
    assert [(c.carrier.name, c.route.prefix, c.route.operator) for c in _uk_plan("+447700900456").candidates] == [
        ("a", "44", ""), ("b", "447", "234/10")]
    # a number the hook does not know: routes without an operator only
    assert _names(_uk_plan("+447700900777")) == ["a", "b"]


@override_settings(ROUTING_OPERATOR_LOOKUP=HOOK)
def test_operator_answers_are_cached_and_a_failing_lookup_routes_without_an_operator(caplog):
    from messaging.routing.operators import operator_key, operators_of

    LOOKED_UP.clear()
    assert operators_of([UK, "+447700900777"]) == {UK: "234-15", "+447700900777": ""}
    assert operators_of([UK, "+447700900777", UK]) == {UK: "234-15", "+447700900777": ""}
    assert LOOKED_UP == [UK, "+447700900777"]  # once each, "" included
    with caplog.at_level("ERROR", "smsportal.routing"):
        assert operators_of(["+447700900999"]) == {"+447700900999": ""}
        assert operators_of(["+447700900999"]) == {"+447700900999": ""}
    assert LOOKED_UP.count("+447700900999") == 2 and "operator lookup" in caplog.text  # a failure is not cached
    assert [operator_key(t) for t in ("234/15", "234-15", "23415", " 310 410 ", "", "2341", "abc-de")] == [
        "234-15", "234-15", "234-15", "310-410", "", "", ""]


def test_a_change_is_in_use_within_the_cache_time_without_a_clear():
    _route("a", "1", "0.001")
    routing_cache_clear()
    assert [r.carrier.name for r in routing_table().routes] == ["a"]
    Route.objects.filter(carrier__name="a").update(enabled=False)  # no signal: as another process's change
    assert [r.carrier.name for r in routing_table().routes] == ["a"]  # still the cached table
    with override_settings(ROUTING_CACHE_SECONDS=0):
        assert routing_table().routes == ()


def test_a_save_clears_this_processs_cache_at_once():
    route = _route("a", "1", "0.001")
    routing_cache_clear()
    assert len(routing_table().routes) == 1
    route.enabled = False
    route.save()
    assert routing_table().routes == ()


# --- rate decks ---------------------------------------------------------------------------------

DECK = """prefix,country,operator,cost,currency,effective_from
44,GB,,0.0310,EUR,
4477,GB,234/15,0.0290,EUR,
49,DE,,0.0500,EUR,2030-01-01
"""


def _import(tmp_path, text: str, carrier: str = "eu") -> str:
    Carrier.objects.get_or_create(name=carrier, defaults={"kind": Carrier.Kind.SIMULATOR})
    path = tmp_path / "deck.csv"
    path.write_text(text)
    out = StringIO()
    call_command("routes_import", carrier, str(path), stdout=out)
    return out.getvalue()


def test_a_deck_creates_routes_and_a_future_row_waits_for_its_date(tmp_path):
    output = _import(tmp_path, DECK)
    assert "3 rows: 3 routes created" in output
    gb = Route.objects.get(prefix="4477")
    assert (gb.operator, gb.country, gb.cost) == ("234/15", "GB", Decimal("0.0290"))
    de = Route.objects.get(prefix="49")
    assert de.cost_from is None  # not routed before its date
    routing_cache_clear()
    assert sorted(r.prefix for r in routing_table().routes) == ["44", "4477"]
    with time_machine.travel("2030-01-01 00:00:01+00:00"):
        assert route_costs_apply() == 1
        de.refresh_from_db()
        assert de.cost == Decimal("0.05") and de.cost_from is not None


def test_a_dry_run_says_what_the_deck_would_do_and_changes_nothing(tmp_path):
    Carrier.objects.create(name="eu", kind=Carrier.Kind.SIMULATOR)
    path = tmp_path / "deck.csv"
    path.write_text(DECK)
    out = StringIO()
    call_command("routes_import", "eu", str(path), "--dry-run", stdout=out)
    assert "dry run, nothing changed: 3 rows: 3 routes would be created, 3 costs would be added" in out.getvalue()
    assert not Route.objects.exists() and not RouteCost.objects.exists()
    assert "3 routes created" in _import(tmp_path, DECK)


def test_a_later_deck_takes_over_at_its_time_and_keeps_the_history(tmp_path):
    _import(tmp_path, DECK)
    _import(tmp_path, "prefix,country,operator,cost,currency,effective_from\n44,GB,,0.0250,EUR,2030-06-01\n")
    route = Route.objects.get(prefix="44")
    assert route.cost == Decimal("0.031")  # the new price is not in force yet
    with time_machine.travel("2030-06-01 00:00:01+00:00"):
        route_costs_apply()
    route.refresh_from_db()
    assert route.cost == Decimal("0.025")
    assert list(RouteCost.objects.filter(route=route).values_list("cost", flat=True)) == [Decimal("0.025"),
                                                                                        Decimal("0.031")]
    # the same deck again adds nothing
    assert "0 costs added, 1 already there" in _import(
        tmp_path, "prefix,country,operator,cost,currency,effective_from\n44,GB,,0.0250,EUR,2030-06-01\n")


@pytest.mark.parametrize("text, message", [
    ("prefix,cost\n44,0.1\n", "line 1: the header must be"),
    ("prefix,country,operator,cost,currency,effective_from\nabc,GB,,0.1,EUR,\n", "line 2: prefix must be"),
    ("prefix,country,operator,cost,currency,effective_from\n44,GB,,free,EUR,\n", "line 2: cost 'free' is not"),
    ("prefix,country,operator,cost,currency,effective_from\n44,GB,,-1,EUR,\n", "line 2: cost must be 0 or more"),
    ("prefix,country,operator,cost,currency,effective_from\n44,GB,,0.1,EURO,\n", "line 2: currency must be"),
    ("prefix,country,operator,cost,currency,effective_from\n44,GB,,0.1,EUR,soon\n", "line 2: effective_from 'soon'"),
    ("prefix,country,operator,cost,currency,effective_from\n44,GB,,0.1,EUR,2030-01-01\n44,GB,,0.2,EUR,2030-01-01\n",
     "line 3: +44  is listed twice"),
])
def test_a_bad_deck_names_its_line_and_writes_nothing(tmp_path, text, message):
    with pytest.raises(DeckError, match=message.replace("+", r"\+")):
        deck_parse(text)
    with pytest.raises(CommandError, match=message.replace("+", r"\+")):
        _import(tmp_path, text)
    assert not Route.objects.exists()


def test_a_deck_for_an_unknown_carrier_is_refused(tmp_path):
    path = tmp_path / "deck.csv"
    path.write_text(DECK)
    with pytest.raises(CommandError, match="no carrier named 'ghost'"):
        call_command("routes_import", "ghost", str(path))


# --- quality rollup -----------------------------------------------------------------------------


def _attempts_on(route: Route, *, delivered: int, failed: int, errors: int = 0, latency_ms: int = 2000,
                 ago: timedelta = timedelta(minutes=5)) -> None:
    from accounts.tests.factories import TenantFactory
    from messaging.models import Message, MessageAttempt

    tenant = TenantFactory()
    start = timezone.now() - ago
    outcomes = ["delivered"] * delivered + ["failed"] * failed + ["route_error"] * errors
    for number, outcome in enumerate(outcomes):
        message = Message.unscoped.create(tenant=tenant, to=US, sender="Acme", text="x", encoding="GSM-7", segments=1,
                                          characters=1, mode="live", expires_at=start + timedelta(hours=1))
        submitted = start if outcome != "route_error" else None
        MessageAttempt.unscoped.create(
            tenant=tenant, message=message, number=1, route=route, carrier=route.carrier.name, outcome=outcome,
            started_at=start, submitted_at=submitted,
            finished_at=start + timedelta(milliseconds=latency_ms + number) if outcome != "route_error" else start)


def test_the_rollup_counts_each_window_and_the_receipt_latency():
    from messaging.routing.quality import route_quality_rollup

    route = _route("a", "1", "0.001")
    _attempts_on(route, delivered=18, failed=2, errors=1, latency_ms=1000)
    _attempts_on(route, delivered=10, failed=10, latency_ms=5000, ago=timedelta(hours=3))  # only in the day
    assert route_quality_rollup() == 2
    quarter = RouteQuality.objects.get(route=route, window="15m")
    assert (quarter.submits, quarter.delivered, quarter.failed, quarter.errors) == (21, 18, 2, 1)
    assert quarter.delivery_rate == Decimal("0.9") and 1000 <= quarter.latency_p50_ms <= 1020
    assert quarter.error_rate == Decimal(1) / Decimal(21)
    day = RouteQuality.objects.get(route=route, window="24h")
    assert (day.delivered, day.failed) == (28, 12) and day.latency_p95_ms >= 5000


@override_settings(ROUTING_MIN_SAMPLE=20, ROUTING_COLLAPSE_DROP=0.30)
def test_a_collapsing_delivery_rate_opens_the_circuit():
    from messaging.models import RouteCircuitTransition
    from messaging.routing.quality import route_quality_rollup

    route = _route("a", "1", "0.001")
    _attempts_on(route, delivered=190, failed=10, ago=timedelta(hours=5))  # the day: 95 %
    _attempts_on(route, delivered=10, failed=30)  # the last 15 minutes: 25 %
    route_quality_rollup()
    circuit = RouteCircuit.objects.get(route=route)
    assert circuit.state == RouteCircuit.State.OPEN and "collapsed" in circuit.reason
    assert RouteCircuitTransition.objects.filter(route=route, to_state="open").count() == 1
    assert _plan(policy="cheapest").candidates == ()
