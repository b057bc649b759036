"""Dispatch by the routing table (LIVE_CARRIER = "routes"): least-cost choice, failover to the next route on a
route-level failure, a final destination-level refusal, circuits, and the `routing` the API shows."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from numbers.tests.factories import shared_senders

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import TenantFactory, bearer, make_api_key
from messaging import dispatch, pipeline
from messaging.accept import message_send
from messaging.models import Carrier, Message, MessageAttempt, Route, RouteCircuit, RouteCircuitTransition, Status
from messaging.routing.cache import routing_cache_clear

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("routes_mode")]
TO = "+14155550123"


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def routes_mode(settings, monkeypatch):
    settings.LIVE_CARRIER = "routes"
    settings.ROUTING_CIRCUIT_FAILURES = 3
    settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS = 30
    from messaging.tasks import simulator_receipts_task

    receipts = []
    monkeypatch.setattr(simulator_receipts_task, "apply_async", lambda args, **kw: receipts.append((args, kw)))
    routing_cache_clear()
    return receipts


@pytest.fixture
def live():
    tenant = TenantFactory()
    api_key, secret = make_api_key(tenant, mode="live", scopes=["messages:send", "messages:read"])
    return tenant, api_key, secret


def _carrier(name: str, cost: str, kind: str = Carrier.Kind.SIMULATOR, prefix: str = "1") -> Route:
    carrier = Carrier.objects.create(name=name, kind=kind)
    return Route.objects.create(carrier=carrier, prefix=prefix, country="US", cost=Decimal(cost), currency="USD",
                                cost_from=timezone.now())


def _send(live, to: str = TO, **fields) -> Message:
    tenant, api_key, _ = live
    return message_send(tenant=tenant, api_key=api_key, to=to, sender="Acme", text="Your code is 123456", **fields)


def _dispatch(message: Message) -> Message:
    dispatch.messages_dispatch(message_ids=[message.pk])
    message.refresh_from_db()
    return message


def _attempts(message: Message) -> list[tuple[str, str, str]]:
    return list(MessageAttempt.unscoped.filter(message=message).order_by("number")
                .values_list("carrier", "outcome", "error_code"))


def test_a_live_message_goes_over_the_cheapest_route_and_its_receipt_finishes_the_attempt(live, routes_mode):
    _carrier("pricey", "0.0090")
    _carrier("cheap", "0.0010")
    message = _dispatch(_send(live))
    assert (message.status, message.carrier) == (Status.SENT, "cheap")
    assert _attempts(message) == [("cheap", "submitted", "")]
    # the simulator's receipt comes back under the carrier's name and ends the attempt
    (args, kwargs), = routes_mode
    assert kwargs["kwargs"] == {"carrier": "cheap"}
    pipeline.receipts_apply(carrier="cheap", receipts=[pipeline.Receipt(*row) for row in args[0]])
    message.refresh_from_db()
    assert message.status == Status.DELIVERED and _attempts(message) == [("cheap", "delivered", "")]


def test_a_route_failure_fails_over_to_the_next_route_at_once(live):
    _carrier("broken", "0.0010", kind=Carrier.Kind.SMPP)  # no connector in this process: a route error
    _carrier("backup", "0.0050")
    message = _dispatch(_send(live))
    # the first route failed at route level: back in the queue with no back-off, the attempt on record
    assert message.status == Status.QUEUED and message.next_attempt_at <= timezone.now() + timedelta(seconds=1)
    assert _attempts(message) == [("broken", "route_error", "connector_unavailable")]
    # and its next dispatch takes the next route
    message = _dispatch(message)
    assert (message.status, message.carrier) == (Status.SENT, "backup")
    assert [outcome for _, outcome, _ in _attempts(message)] == ["route_error", "submitted"]
    second = MessageAttempt.unscoped.get(message=message, number=2)
    assert second.reason == "failover: the next of 2 routes after 1 failed"


def test_every_route_failing_retries_the_plan_with_back_off(live):
    _carrier("broken", "0.0010", kind=Carrier.Kind.SMPP)
    message = _dispatch(_send(live))
    message = _dispatch(message)
    assert message.status == Status.QUEUED and message.next_attempt_at > timezone.now()
    events = list(message.events.model.unscoped.filter(message=message).values_list("detail", flat=True))
    assert any("all_routes_failed" in detail for detail in events)


def test_no_route_fails_the_message(live):
    _carrier("uk", "0.0010", prefix="44")
    message = _dispatch(_send(live))
    assert (message.status, message.error_code) == (Status.FAILED, "no_route")
    assert "No route can carry this message (no route for +1415" in message.error_message


def test_a_destination_level_refusal_is_final_and_tries_no_other_route(live):
    _carrier("cheap", "0.0010")
    _carrier("backup", "0.0050")
    message = _dispatch(_send(live, to="+14155550002"))  # the simulator rejects ...0002 (invalid destination)
    assert (message.status, message.error_code) == (Status.FAILED, "carrier_rejected")
    assert _attempts(message) == [("cheap", "rejected", "carrier_rejected")]


def test_the_circuit_opens_after_repeated_route_failures_and_closes_after_a_trial_succeeds(live, caplog):
    broken = _carrier("broken", "0.0010", kind=Carrier.Kind.SMPP)
    _carrier("backup", "0.0050")
    messages = [_send(live) for _ in range(3)]
    dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
    circuit = RouteCircuit.objects.get(route=broken)
    assert circuit.state == RouteCircuit.State.OPEN and circuit.consecutive_failures == 3
    assert RouteCircuitTransition.objects.get(route=broken).to_state == "open"
    assert AuditEvent.unscoped.filter(action="route.circuit_open").exists()
    # while open, new messages go straight to the backup
    message = _dispatch(_send(live))
    assert message.carrier == "backup" and _attempts(message) == [("backup", "submitted", "")]
    # the carrier is fixed; after the cool-down a trial message goes through it and the circuit closes
    Carrier.objects.filter(pk=broken.carrier_id).update(kind=Carrier.Kind.SIMULATOR)
    routing_cache_clear()
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        message = _dispatch(_send(live))
    assert message.carrier == "broken"
    circuit.refresh_from_db()
    assert circuit.state == RouteCircuit.State.CLOSED and circuit.consecutive_failures == 0
    assert list(RouteCircuitTransition.objects.filter(route=broken).order_by("created_at")
                .values_list("to_state", flat=True)) == ["open", "half_open", "closed"]
    # each transition is also a structured log event an alert can match (event, route, states)
    events = [r for r in caplog.records if getattr(r, "event", "") == "route.circuit"]
    assert [(r.route_id, r.from_state, r.to_state) for r in events] == [
        (broken.pk, "closed", "open"), (broken.pk, "open", "half_open"), (broken.pk, "half_open", "closed")]


def test_test_mode_messages_keep_the_simulator(live):
    _carrier("cheap", "0.0010")
    tenant, _, _ = live
    test_key, _ = make_api_key(tenant, mode="test", name="test")
    message = message_send(tenant=tenant, api_key=test_key, to=TO, sender="Acme", text="hi")
    message = _dispatch(message)
    assert (message.status, message.carrier) == (Status.SENT, "simulator") and _attempts(message) == []


@override_settings(ROUTING_CACHE_SECONDS=0)
def test_the_api_shows_the_routing_without_the_carrier_or_its_cost(live, client):
    _carrier("broken", "0.0010", kind=Carrier.Kind.SMPP)
    _carrier("backup", "0.0050")
    message = _dispatch(_dispatch(_send(live)))
    _, _, secret = live
    body = client.get(f"/v1/messages/{message.public_id}", **bearer(secret)).json()
    routing = body["routing"]
    assert routing["country"] == "US" and routing["quality_class"] == "unrated"
    assert routing["reason"] == "failover: the next of 2 routes after 1 failed"
    assert [(a["number"], a["outcome"], a["error_code"]) for a in routing["attempts"]] == [
        (1, "route_error", "connector_unavailable"), (2, "submitted", None)]
    assert all(a["submit_ms"] is not None for a in routing["attempts"])
    text = str(body)
    assert "backup" not in text and "broken" not in text and "0.005" not in text and "cost" not in text


def _twilio_route(fake, cost: str) -> Route:
    from messaging.routing.credentials import credentials_encrypt

    carrier = Carrier.objects.create(name="twilio-main", kind=Carrier.Kind.HTTP, settings={
        "preset": "twilio", "base_url": fake.base_url, "account_sid": fake.twilio_sid, "allow_private_network": True,
        "timeout_seconds": 2}, credentials_encrypted=credentials_encrypt({"auth_token": fake.twilio_token}))
    return Route.objects.create(carrier=carrier, prefix="1", country="US", cost=Decimal(cost), currency="USD",
                                cost_from=timezone.now())


def test_a_live_message_goes_out_over_an_http_carrier_with_our_callback_url(live, settings):
    from urllib.parse import parse_qs

    from messaging.tests.fake_carriers import FakeCarriers

    settings.PUBLIC_BASE_URL = "https://sms.example"
    with FakeCarriers() as fake:
        _twilio_route(fake, "0.0079")
        message = _dispatch(_send(live))
        assert (message.status, message.carrier) == (Status.SENT, "twilio-main")
        assert message.carrier_message_id.startswith("SM") and _attempts(message) == [("twilio-main", "submitted", "")]
        (request,) = fake.requests
        fields = parse_qs(request.body.decode())
        assert fields["To"] == [TO] and fields["Body"] == ["Your code is 123456"]
        assert fields["StatusCallback"] == ["https://sms.example/carriers/twilio-main/receipts#rc=5&rp=ct,rt,5xx"]


def test_an_http_carriers_500_fails_over_to_the_next_route(live):
    from messaging.tests.fake_carriers import FakeCarriers

    with FakeCarriers() as fake:
        _twilio_route(fake, "0.0010")
        _carrier("backup", "0.0050")
        message = _dispatch(_send(live, to="+14155550500"))  # the fake answers 500 for ...0500
        assert _attempts(message) == [("twilio-main", "route_error", "carrier_server_error")]
        message = _dispatch(message)
    assert (message.status, message.carrier) == (Status.SENT, "backup")


def test_a_carriers_error_text_never_names_the_carrier_to_the_customer(live):
    from messaging.tests.fake_carriers import FakeCarriers

    with FakeCarriers() as fake:
        _twilio_route(fake, "0.0010")
        refused = _dispatch(_send(live, to="+14155550400"))  # the fake's invalid-number answer
        throttled = _dispatch(_send(live, to="+14155550429"))  # its 429
    assert (refused.status, refused.error_code) == (Status.FAILED, "carrier_rejected")
    assert refused.error_message == "The carrier rejected the message."
    assert throttled.status == Status.QUEUED
    for message in (refused, throttled):
        texts = [message.error_message, *(e.detail for e in message.events.model.unscoped.filter(message=message))]
        assert not any("twilio" in text.lower() for text in texts), texts


def test_the_quality_beat_stores_a_cooled_circuit_half_open_once(live):
    from messaging.tasks import route_quality_rollup_task

    broken = _carrier("broken", "0.0010", kind=Carrier.Kind.SMPP)
    _carrier("backup", "0.0050")
    dispatch.messages_dispatch(message_ids=[_send(live).pk for _ in range(3)])
    circuit = RouteCircuit.objects.get(route=broken)
    route_quality_rollup_task()  # within the cool-down: still open
    circuit.refresh_from_db()
    assert circuit.state == RouteCircuit.State.OPEN

    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        route_quality_rollup_task()
        route_quality_rollup_task()  # twice: one transition

    circuit.refresh_from_db()
    assert circuit.state == RouteCircuit.State.HALF_OPEN
    assert list(RouteCircuitTransition.objects.filter(route=broken).order_by("created_at")
                .values_list("to_state", flat=True)) == ["open", "half_open"]
    assert AuditEvent.unscoped.filter(action="route.circuit_half_open").count() == 1
    # the trial fails (the carrier is still SMPP with no connector): open again, a new cool-down
    with time_machine.travel(timezone.now() + timedelta(seconds=32)):
        message = _dispatch(_send(live))
        circuit.refresh_from_db()
        assert circuit.state == RouteCircuit.State.OPEN and circuit.reason == "the trial message failed"
        assert timezone.now() - circuit.opened_at < timedelta(seconds=5)
    assert message.status == Status.QUEUED  # failed over: its next dispatch takes the backup


@pytest.mark.django_db(transaction=True)
def test_two_workers_recording_on_one_circuit_at_once_make_one_transition(monkeypatch):
    """PostgreSQL: two threads (two connections) each record a failure on a circuit one failure short of opening.
    The first one's move is slowed; without the row lock the second reads the circuit still closed, opens it too
    and the first then writes back its stale count."""
    import threading
    import time

    from django.db import connection, connections

    from messaging.routing import dispatching

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    route = _carrier("shaky", "0.0010")
    RouteCircuit.objects.create(route=route, consecutive_failures=2)  # ROUTING_CIRCUIT_FAILURES is 3 here
    real_move = dispatching.circuit_move

    def slow_move(circuit, to, reason):
        time.sleep(0.5)
        real_move(circuit, to, reason)

    monkeypatch.setattr(dispatching, "circuit_move", slow_move)
    errors = []

    def record():
        try:
            dispatching.circuit_record(route_id=route.pk, successes=0, failures=1, last_failed=True)
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=record)
    first.start()
    time.sleep(0.2)  # the first holds the circuit, in its slowed move
    second = threading.Thread(target=record)
    second.start()
    first.join(10)
    second.join(10)

    assert errors == []
    circuit = RouteCircuit.objects.get(route=route)
    assert (circuit.state, circuit.consecutive_failures) == (RouteCircuit.State.OPEN, 4)
    assert list(RouteCircuitTransition.objects.filter(route=route).values_list("to_state", flat=True)) == ["open"]


def test_dispatch_routes_by_the_destinations_operator_from_the_lookup_hook(live, settings):
    from messaging.tests import test_routing

    settings.ROUTING_OPERATOR_LOOKUP = "messaging.tests.test_routing.operator_lookup"
    test_routing.LOOKED_UP.clear()
    _carrier("generic", "0.0300", prefix="44")
    Route.objects.create(carrier=Carrier.objects.create(name="op-15", kind=Carrier.Kind.SIMULATOR), prefix="44",
                         operator="234/15", country="GB", cost=Decimal("0.0200"), currency="USD", cost_from=timezone.now())
    routing_cache_clear()
    by_operator = _dispatch(_send(live, to="+447911123456"))  # the hook: 234-15
    other = _dispatch(_send(live, to="+447911123457"))  # 234-10: the generic route only
    assert (by_operator.carrier, other.carrier) == ("op-15", "generic")
    assert _attempts(by_operator) == [("op-15", "submitted", "")]
    assert sorted(test_routing.LOOKED_UP) == ["+447911123456", "+447911123457"]


@pytest.mark.django_db(transaction=True)
def test_a_hanging_http_carrier_cannot_hold_a_batch_until_the_sweeper_reclaims_it(live, settings):
    """Six messages to a carrier that never answers, two requests at a time, a 10 s timeout: 30 s without a
    budget, past MESSAGE_STUCK_SECONDS (4 s here), and the sweeper would take the messages still being sent for
    abandoned. With the budget (half of it) the batch ends at 2 s: the two in flight are cut (failover), the
    four not started go back to the queue unsent; the sweep at 4.5 s finds nothing to reclaim."""
    import threading
    import time

    from django.db import connection, connections

    from messaging.tests.fake_carriers import FakeCarriers

    if connection.vendor != "postgresql":
        pytest.skip("a dispatch thread beside the sweep: PostgreSQL")
    settings.MESSAGE_STUCK_SECONDS = 4
    with FakeCarriers() as fake:
        route = _twilio_route(fake, "0.0010")
        Carrier.objects.filter(pk=route.carrier_id).update(settings={
            **route.carrier.settings, "timeout_seconds": 10, "concurrency": 2})
        routing_cache_clear()
        messages = [_send(live, to="+14155550408") for _ in range(6)]  # the fake never answers ...0408
        started = time.monotonic()
        finished = []

        def run():
            try:
                dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
                finished.append(time.monotonic() - started)
            finally:
                connections.close_all()

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(4.5 - (time.monotonic() - started))
        swept = pipeline.messages_sweep()
        worker.join(40)
        requests = len(fake.requests)

    assert swept["reclaimed"] == 0
    assert finished and finished[0] < 3.5, finished
    outcomes = sorted(MessageAttempt.unscoped.filter(message__in=messages).values_list("outcome", "error_code"))
    assert outcomes == [("retry", "dispatch_deadline")] * 4 + [("route_error", "carrier_timeout")] * 2
    assert requests == 2  # the four not started never reached the carrier
    assert {m.status for m in Message.unscoped.filter(pk__in=[m.pk for m in messages])} == {Status.QUEUED}
    assert not MessageAttempt.unscoped.filter(message__in=messages, outcome="unknown").exists()


def _slow_and_fast(live, fake) -> tuple[Message, list[Message]]:
    """A Twilio route that waits for a slow answer, one message it answers 3 s late and three it answers at once."""
    route = _twilio_route(fake, "0.0010")
    Carrier.objects.filter(pk=route.carrier_id).update(settings={**route.carrier.settings, "timeout_seconds": 10})
    routing_cache_clear()
    return _send(live, to="+14155550303"), [_send(live, to=f"+1415555012{n}") for n in range(3)]


@pytest.mark.django_db(transaction=True)
def test_a_slow_request_does_not_hold_back_the_carrier_ids_of_the_fast_ones(live):
    """One request of a carrier group takes 3 s: the three fast ones' carrier ids (and `sent`) are in the
    database while it is still pending, so a receipt that overtakes them finds them; all four end sent."""
    import threading
    import time

    from django.db import connection, connections

    from messaging.tests.fake_carriers import FakeCarriers
    from messaging.tests.smpp_server import wait_until

    if connection.vendor != "postgresql":
        pytest.skip("a dispatch thread beside the test's reads: PostgreSQL")
    with FakeCarriers() as fake:
        slow, fast = _slow_and_fast(live, fake)
        results = []

        def run():
            try:
                results.append(dispatch.messages_dispatch(message_ids=[slow.pk, *(m.pk for m in fast)]))
            finally:
                connections.close_all()

        started = time.monotonic()
        worker = threading.Thread(target=run)
        worker.start()

        def fast_stored() -> bool:
            rows = Message.unscoped.filter(pk__in=[m.pk for m in fast]).values_list("status", "carrier_message_id")
            return all(status == Status.SENT and cid.startswith("SM") for status, cid in rows)

        # then, polled from here while the dispatch runs: the fast ones are stored long before the slow answer
        assert wait_until(fast_stored, 2.5)
        seen_after = time.monotonic() - started
        slow.refresh_from_db()
        assert (slow.status, slow.carrier_message_id) == (Status.SENDING, "") and not results, seen_after
        worker.join(20)
    # and all four end correctly, the slow one too, with one attempt each
    assert results and results[0]["sent"] == 4
    rows = Message.unscoped.filter(pk__in=[slow.pk, *(m.pk for m in fast)]).values_list("status", "carrier_message_id")
    assert all(status == Status.SENT and cid.startswith("SM") for status, cid in rows)
    assert len({cid for _, cid in rows}) == 4
    assert all(_attempts(m) == [("twilio-main", "submitted", "")] for m in [slow, *fast])


def test_each_http_requests_outcome_is_recorded_when_it_finishes_not_when_the_group_does(live):
    """The same group in this thread (SQLite too): the fast ones' `sent` events were written about 3 s before
    the slow one's, and the counts are the group's."""
    from datetime import timedelta

    from messaging.models import MessageEvent
    from messaging.tests.fake_carriers import FakeCarriers

    with FakeCarriers() as fake:
        slow, fast = _slow_and_fast(live, fake)
        counts = dispatch.messages_dispatch(message_ids=[slow.pk, *(m.pk for m in fast)])
    assert counts["sent"] == 4 and counts["failed"] == counts["retrying"] == 0
    sent_at = dict(MessageEvent.unscoped.filter(message__in=[slow, *fast], status=Status.SENT)
                   .values_list("message_id", "created_at"))
    assert len(sent_at) == 4
    assert all(sent_at[slow.pk] - sent_at[m.pk] >= timedelta(seconds=2) for m in fast), sent_at


def test_an_http_carriers_new_credentials_are_used_by_the_next_dispatch_without_a_restart(live):
    """Workers keep one built connector per carrier until the carrier row changes (its updated_at): a
    rotated token saved as admin or carriers_load saves it is in use at the next dispatch of this process."""
    from messaging.routing.credentials import credentials_encrypt
    from messaging.tests.fake_carriers import FakeCarriers

    with FakeCarriers() as fake:
        route = _twilio_route(fake, "0.0079")
        carrier = route.carrier
        carrier.credentials_encrypted = credentials_encrypt({"auth_token": "an-old-token"})
        carrier.save()
        refused = _dispatch(_send(live))
        assert refused.status != Status.SENT and not fake.accepted  # Twilio said 401 to the old token
        carrier.credentials_encrypted = credentials_encrypt({"auth_token": fake.twilio_token})
        carrier.save()
        message = _dispatch(_send(live))
        assert (message.status, message.carrier) == (Status.SENT, "twilio-main")
        assert len(fake.accepted) == 1
