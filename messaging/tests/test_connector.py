"""The SMPP connector process (messaging/connector/): dispatch hands it SMPP attempts, it sends them over a real
SMSC (node-smpp, messaging/tests/smpp_peer/) and stores answers and receipts; its journal settles a killed
run's claims; the sweep fails over what no connector took and settles the claims of a connector that died."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import TenantFactory, make_api_key
from messaging import dispatch
from messaging.accept import message_send
from messaging.connector import claims
from messaging.connector.journal import Journal
from messaging.connector.service import Connector, ConnectorLocked
from messaging.models import Carrier, Message, MessageAttempt, MessagePart, Route, Status
from messaging.routing.cache import routing_cache_clear
from messaging.routing.credentials import credentials_encrypt
from messaging.routing.models import ConnectorLease, RouteCircuit, RouteCircuitTransition
from messaging.tests import history
from messaging.tests.smpp_server import LocalSmsc, Peer, Running, free_port, wait_until
from smsportal.tests.servers import server_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the connector's threads (and its process) need PostgreSQL, not the in-memory SQLite "
                              "test database"),
]
REPO = Path(__file__).resolve().parents[2]
Outcome = MessageAttempt.Outcome


@pytest.fixture
def routes_mode(settings, tmp_path):
    settings.LIVE_CARRIER = "routes"
    settings.CONNECTOR_JOURNAL_DIR = str(tmp_path / "journal")
    settings.CONNECTOR_HEARTBEAT_SECONDS = 0.2
    settings.ROUTING_CACHE_SECONDS = 0
    routing_cache_clear()
    yield settings
    routing_cache_clear()


@pytest.fixture
def peer():
    server = Peer(free_port())
    server.command("config", receipts="tlv")
    yield server
    server.stop()


@pytest.fixture
def live():
    tenant = TenantFactory(messages_per_second=1000)
    api_key, _ = make_api_key(tenant, mode="live", scopes=["messages:send", "messages:read"])
    return tenant, api_key


def smpp_carrier(port: int, *, name: str = "eu-smpp", cost: str = "0.0010", window: int = 10,
                 submit_timeout: float = 3) -> Carrier:
    carrier = Carrier.objects.create(
        name=name, kind=Carrier.Kind.SMPP,
        settings={"host": "127.0.0.1", "port": port, "system_id": "smsportal", "window": window,
                  "submit_timeout_seconds": submit_timeout, "reconnect_min_seconds": 0.2, "reconnect_max_seconds": 1.0,
                  "receipt_hold_seconds": 1},
        credentials_encrypted=credentials_encrypt({"password": "secret"}))
    Route.objects.create(carrier=carrier, prefix="44", country="GB", cost=Decimal(cost), currency="USD",
                         cost_from=timezone.now())
    return carrier


def simulator_route(name: str = "backup", cost: str = "0.0090") -> Route:
    carrier = Carrier.objects.create(name=name, kind=Carrier.Kind.SIMULATOR)
    return Route.objects.create(carrier=carrier, prefix="44", country="GB", cost=Decimal(cost), currency="USD",
                                cost_from=timezone.now())


def send(live, to: str = "+447911123459", text: str = "Your code is 123456") -> Message:
    tenant, api_key = live
    return message_send(tenant=tenant, api_key=api_key, to=to, sender="Acme", text=text)


def bound(carrier: Carrier) -> bool:
    carrier.refresh_from_db()
    return carrier.session_state == "bound"


def status_of(message: Message) -> str:
    message.refresh_from_db()
    return message.status


def attempts(message: Message) -> list[tuple[str, str, str]]:
    return list(MessageAttempt.unscoped.filter(message=message).order_by("number")
                .values_list("carrier", "outcome", "error_code"))


def test_a_live_message_goes_over_smpp_and_its_receipt_delivers_it(routes_mode, peer, live):
    carrier = smpp_carrier(peer.port)
    with Running() as running:
        assert wait_until(lambda: bound(carrier), 10)
        routing_cache_clear()
        message = send(live)
        counts = dispatch.messages_dispatch(message_ids=[message.pk])
        assert counts.get("handed") == 1 and status_of(message) == Status.SENDING
        assert wait_until(lambda: status_of(message) == Status.DELIVERED, 10)
        assert wait_until(lambda: running.connector.stats.receipts == 1, 5)  # counted just after the store
    message.refresh_from_db()
    [submit] = peer.pdus("submit_sm")
    assert submit["destination_addr"] == "447911123459" and submit["registered_delivery"] == 1
    assert message.carrier == "eu-smpp" and message.carrier_message_id == submit_id(peer)
    assert attempts(message) == [("eu-smpp", Outcome.DELIVERED, "")]
    # the receipt's deliver_sm was answered, after it was stored
    assert [e["command_status"] for e in peer.matching(lambda e: e["event"] == "receipt_resp")] == [0]
    # a clean stop reports the carrier down and ends the lease; the journal is empty
    assert not bound(carrier) and not ConnectorLease.objects.exists()
    assert Journal(routes_mode.CONNECTOR_JOURNAL_DIR, "test-connector").read() == {}


def submit_id(peer: Peer) -> str:
    [resp] = peer.matching(lambda e: e["event"] == "sent" and e["command"] == "submit_sm_resp")
    return resp["message_id"]


def submit_ids(peer: Peer) -> list[str]:
    return [e["message_id"] for e in peer.matching(lambda e: e["event"] == "sent" and e["command"] == "submit_sm_resp")]


def test_a_long_unicode_message_goes_out_in_parts_and_is_delivered_by_every_parts_receipt(routes_mode, peer, live):
    carrier = smpp_carrier(peer.port)
    text = "Привет! " * 20  # UCS-2, 160 characters: 3 parts of at most 67
    with Running() as running:
        assert wait_until(lambda: bound(carrier), 10)
        routing_cache_clear()
        message = send(live, text=text)
        dispatch.messages_dispatch(message_ids=[message.pk])
        assert wait_until(lambda: status_of(message) == Status.DELIVERED, 10)
        assert wait_until(lambda: running.connector.stats.receipts == 3, 10)
    parts = peer.pdus("submit_sm")
    assert len(parts) == message.segments == 3
    assert "".join(p["text"] for p in parts) == text and {p["data_coding"] for p in parts} == {8}
    # each part's carrier id is stored, each part's receipt found it, and the message was delivered once
    assert list(MessagePart.unscoped.filter(message=message).order_by("number")
                .values_list("carrier_message_id", "status")) == [(cid, "delivered") for cid in submit_ids(peer)]
    assert message.carrier_message_id == submit_ids(peer)[0]
    assert history.statuses(message).count("delivered") == 1
    assert [e["command_status"] for e in peer.matching(lambda e: e["event"] == "receipt_resp")] == [0, 0, 0]
    assert attempts(message) == [("eu-smpp", Outcome.DELIVERED, "")]


def test_a_long_message_whose_second_part_is_undelivered_ends_undelivered(routes_mode, peer, live):
    peer.command("config", stats=["DELIVRD", "UNDELIV", "DELIVRD"])
    carrier = smpp_carrier(peer.port)
    with Running() as running:
        assert wait_until(lambda: bound(carrier), 10)
        routing_cache_clear()
        message = send(live, text="A long message. " * 20)  # GSM-7, 320 characters: 3 parts
        dispatch.messages_dispatch(message_ids=[message.pk])
        assert wait_until(lambda: running.connector.stats.receipts == 3, 10)
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "carrier_undelivered")
    assert history.statuses(message)[-2:] == ["sent", "undelivered"]
    assert list(MessagePart.unscoped.filter(message=message).order_by("number").values_list("status", flat=True)) == [
        "delivered", "undelivered", "delivered"]
    assert attempts(message) == [("eu-smpp", Outcome.FAILED, "")]


def test_an_mo_the_smsc_delivers_again_is_stored_and_answered_once(routes_mode, live):
    """The SMSC delivers a HELP to our number; its deliver_sm_resp is lost with the link (the peer restarts), and
    after the rebind the SMSC delivers another MO, then the HELP again: stored once, one HELP reply, and every
    deliver_sm answered."""
    from numbers import services as numbers
    from numbers.models import InboundMessage
    from numbers.tests.factories import stock

    from compliance.models import KeywordEvent

    tenant, _ = live
    [number] = stock(1, country="GB", start=700)
    numbers.number_assign(tenant=tenant, number=number)
    help_mo = {"from": "447911123456", "to": number.number.lstrip("+"), "parts": [{"hex": "48454c50"}]}  # HELP
    server = Peer(free_port())
    carrier = smpp_carrier(server.port)
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        server.command("mo", **help_mo)
        assert server.wait_for(lambda e: e["event"] == "mo_resp")[0]["command_status"] == 0
        server.stop()
        server = Peer(server.port)
        try:
            assert server.wait_for(lambda e: e["event"] == "bind" and e["ok"], timeout=10)
            server.command("mo", **{**help_mo, "parts": [{"hex": "68656c6c6f"}]})  # "hello"
            server.command("mo", **help_mo)
            resps = server.wait_for(lambda e: e["event"] == "mo_resp", count=2)
        finally:
            server.stop()
    assert [r["command_status"] for r in resps] == [0, 0]
    stored = InboundMessage.unscoped.filter(carrier="eu-smpp").order_by("pk")
    assert [m.text for m in stored] == ["HELP", "hello"]
    assert stored[0].dedupe_key.startswith("smpp-mo-") and stored[0].tenant_id == tenant.pk
    assert KeywordEvent.unscoped.filter(tenant=tenant).count() == 1
    assert Message.unscoped.filter(metadata__help_reply_to=stored[0].public_id).count() == 1


def test_a_destination_the_smsc_refuses_fails_with_no_other_route(routes_mode, peer, live):
    carrier = smpp_carrier(peer.port)
    simulator_route()
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        routing_cache_clear()
        message = send(live, to="+447911123011")  # the peer answers ESME_RINVDSTADR
        dispatch.messages_dispatch(message_ids=[message.pk])
        assert wait_until(lambda: status_of(message) == Status.FAILED, 10)
    assert attempts(message) == [("eu-smpp", Outcome.REJECTED, "invalid_destination")]


def test_dispatch_fails_over_when_no_connector_serves_the_smpp_carrier(routes_mode, live):
    smpp_carrier(free_port())  # nothing listens and no connector runs
    simulator_route()
    message = send(live)
    dispatch.messages_dispatch(message_ids=[message.pk])
    assert status_of(message) == Status.QUEUED  # back at once, for the next route
    dispatch.messages_dispatch(message_ids=[message.pk])
    assert status_of(message) == Status.SENT
    assert attempts(message) == [("eu-smpp", Outcome.ROUTE_ERROR, "connector_unavailable"),
                                 ("backup", Outcome.SUBMITTED, "")]


def test_claimed_attempts_fail_over_when_the_smsc_goes_away(routes_mode, live):
    """The SMSC stops with attempts handed over: the connector's feeder fails them (not_bound) and they go on
    over the next route, without waiting for the pickup sweep."""
    server = Peer(free_port())
    carrier = smpp_carrier(server.port)
    simulator_route()
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        routing_cache_clear()
        server.stop()
        messages = [send(live, to=f"+4479111{i:04d}9") for i in range(5)]
        dispatch.messages_dispatch(message_ids=[m.pk for m in messages])  # handed over while still reported bound
        assert wait_until(lambda: all(status_of(m) == Status.QUEUED for m in messages), 15)
    dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
    for message in messages:
        assert status_of(message) == Status.SENT
        assert [(c, o) for c, o, _ in attempts(message)] == [("eu-smpp", Outcome.ROUTE_ERROR),
                                                             ("backup", Outcome.SUBMITTED)]


def dispatch_until_sent(messages: list[Message], timeout: float = 30) -> bool:
    """Dispatch what is queued (a failed-over message comes back queued) until none is queued or sending."""
    ids = [m.pk for m in messages]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = list(Message.unscoped.filter(pk__in=ids, status=Status.QUEUED).values_list("pk", flat=True))
        if queued:
            dispatch.messages_dispatch(message_ids=queued)
        elif not Message.unscoped.filter(pk__in=ids, status__in=[Status.QUEUED, Status.SENDING]).exists():
            return True
        time.sleep(0.05)
    return False


def circuit_state(route: Route) -> str:
    circuit = RouteCircuit.objects.filter(route=route).first()
    return circuit.state if circuit else RouteCircuit.State.CLOSED


def test_the_cheaper_smpp_carrier_stops_mid_run_its_circuit_opens_and_closes_after_it_is_back(routes_mode, live):
    """Two routes; the cheaper (SMPP) carrier goes away with messages in flight: every message goes on over
    the other route, the SMPP route's circuit opens (failed binds and dropped links count as route failures),
    and after the carrier is back and the cool-down is over, a trial message closes it."""
    routes_mode.ROUTING_CIRCUIT_COOLDOWN_SECONDS = 2
    port = free_port()
    server = Peer(port)
    server.command("config", receipts="tlv")
    carrier = smpp_carrier(port)
    route = carrier.routes.get()
    simulator_route()
    peers = [server]
    try:
        with Running():
            assert wait_until(lambda: bound(carrier), 10)
            routing_cache_clear()
            before = [send(live, to=f"+4479111{i:04d}9") for i in range(10)]
            assert dispatch_until_sent(before)
            assert wait_until(lambda: all(status_of(m) == Status.DELIVERED for m in before), 10)

            server.stop()  # mid-run: these go out while the connector still reports the carrier bound
            during = [send(live, to=f"+4479112{i:04d}9") for i in range(20)]
            assert dispatch_until_sent(during)
            assert wait_until(lambda: circuit_state(route) == RouteCircuit.State.OPEN, 20)

            server = Peer(port)  # the carrier is back
            peers.append(server)
            server.command("config", receipts="tlv", next_id=5000)
            assert wait_until(lambda: bound(carrier), 10)
            time.sleep(routes_mode.ROUTING_CIRCUIT_COOLDOWN_SECONDS)
            trial = [send(live, to="+447911100999")]  # half-open: trial traffic first (lcr._trials_only)
            assert dispatch_until_sent(trial)
            assert wait_until(lambda: circuit_state(route) == RouteCircuit.State.CLOSED, 10)
            after = trial + [send(live, to=f"+4479111{100 + i:04d}9") for i in range(5)]
            assert dispatch_until_sent(after)
            assert wait_until(lambda: all(status_of(m) == Status.DELIVERED for m in after), 10), \
                [attempts(m) for m in after]
    finally:
        for smsc in peers:
            smsc.stop()
    for message in before + after:
        assert attempts(message)[-1] == ("eu-smpp", Outcome.DELIVERED, "")
    for message in during:
        assert status_of(message) == Status.SENT  # the simulator-kind backup's receipt comes from a worker
        assert attempts(message)[-1][:2] == ("backup", Outcome.SUBMITTED)
        assert all(c == "eu-smpp" and o == Outcome.ROUTE_ERROR for c, o, _ in attempts(message)[:-1])
    assert circuit_state(route) == RouteCircuit.State.CLOSED
    moves = list(RouteCircuitTransition.objects.filter(route=route).order_by("pk").values_list("to_state", flat=True))
    assert moves[0] == RouteCircuit.State.OPEN and moves[-1] == RouteCircuit.State.CLOSED


def test_a_carrier_changed_or_disabled_in_use_is_picked_up_without_a_restart(routes_mode, live, monkeypatch):
    """The running connector re-reads the SMPP carriers: a carrier moved to another SMSC (its settings saved,
    as admin or carriers_load saves them) is bound there and its messages go there; a disabled one is
    unbound and reported down, with no restart of the process."""
    from messaging.connector import service

    monkeypatch.setattr(service, "RELOAD_SECONDS", 0.5)
    first, second = Peer(free_port()), Peer(free_port())
    for server in (first, second):
        server.command("config", receipts="tlv")
    carrier = smpp_carrier(first.port)
    try:
        with Running():
            assert wait_until(lambda: bound(carrier), 10)
            carrier.settings = {**carrier.settings, "port": second.port}
            carrier.save()
            assert wait_until(lambda: second.matching(lambda e: e["event"] == "bind" and e["ok"]), 10)
            assert wait_until(lambda: bound(carrier), 10)
            routing_cache_clear()
            moved = send(live)
            assert dispatch_until_sent([moved])
            assert wait_until(lambda: status_of(moved) == Status.DELIVERED, 10)
            assert second.matching(lambda e: e.get("command") == "submit_sm")
            assert not first.matching(lambda e: e.get("command") == "submit_sm")

            carrier.enabled = False
            carrier.save()
            assert wait_until(lambda: (carrier.refresh_from_db() or carrier.session_state) != "bound", 10)
            assert wait_until(lambda: second.matching(lambda e: e["event"] == "close"), 10)
    finally:
        first.stop()
        second.stop()


def test_a_second_connector_of_the_same_name_on_one_host_is_refused(routes_mode):
    first = Connector(name="twin", redis_url="")
    first._lock()
    try:
        with pytest.raises(ConnectorLocked):
            Connector(name="twin", redis_url="")._lock()
    finally:
        first._unlock()


# --- the journal and recovery --------------------------------------------------------------------------------


def _held(live, owner: str, count: int, carrier: Carrier) -> list[MessageAttempt]:
    """`count` messages `sending` whose attempts `owner` claimed (as a connector's feeder leaves them)."""
    tenant, _ = live
    made = []
    for i in range(count):
        message = send(live, to=f"+4479112{i:04d}9")
        Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING, attempts=1)
        made.append(MessageAttempt.unscoped.create(
            tenant=tenant, message=message, number=1, route=carrier.routes.first(), carrier=carrier.name,
            outcome=Outcome.SUBMITTING, claimed_by=owner, claimed_at=timezone.now()))
    return made


def test_a_restart_settles_the_killed_runs_claims_from_its_journal(routes_mode, live):
    carrier = smpp_carrier(free_port())
    answered, refused, unanswered, unsent = _held(live, "host-a", 4, carrier)
    journal = Journal(routes_mode.CONNECTOR_JOURNAL_DIR, "host-a")
    for attempt in (answered, refused, unanswered):
        journal.sending(attempt.pk)
    journal.answered(answered.pk, ("SMSC-1", "SMSC-2"))
    journal.refused(refused.pk, "PermanentError", "invalid_destination")
    del journal  # killed: not closed

    counts = Connector(name="host-a", redis_url="").recover()

    assert counts == {"answered": 2, "unknown": 1, "released": 1}
    sent = Message.unscoped.get(pk=answered.message_id)
    assert (sent.status, sent.carrier_message_id) == (Status.SENT, "SMSC-1")
    assert list(MessagePart.unscoped.filter(message=sent).order_by("number").values_list("carrier_message_id",
                                                                                          flat=True)) == [
        "SMSC-1", "SMSC-2"]  # both parts' ids, from the journal
    assert Message.unscoped.get(pk=refused.message_id).status == Status.FAILED
    lost = Message.unscoped.get(pk=unanswered.message_id)
    assert (lost.status, lost.error_code) == (Status.FAILED, "submit_unknown")
    assert MessageAttempt.unscoped.get(pk=unanswered.pk).outcome == Outcome.UNKNOWN
    again = MessageAttempt.unscoped.get(pk=unsent.pk)
    assert (again.outcome, again.claimed_by) == (Outcome.PENDING, "")
    assert Message.unscoped.get(pk=unsent.message_id).status == Status.SENDING
    assert Journal(routes_mode.CONNECTOR_JOURNAL_DIR, "host-a").read() == {}


def test_the_journal_rotates_and_drops_a_file_once_its_attempts_are_stored(tmp_path, monkeypatch):
    monkeypatch.setattr("messaging.connector.journal.ROTATE_BYTES", 6)
    journal = Journal(tmp_path, "j")
    journal.sending(1)
    journal.sending(2)  # past 6 bytes: the next record opens a second file
    journal.sending(3)
    journal.answered(1, ("X1",))  # goes to the file its attempt started in
    assert len(list(tmp_path.glob("j.journal.*"))) == 2
    assert journal.read()[1].carrier_ids == ("X1",) and journal.read()[3].sent
    journal.settled([1, 2])
    assert [p.name for p in tmp_path.glob("j.journal.*")] == ["j.journal.1"]
    assert set(journal.read()) == {3}


# --- the sweep ---------------------------------------------------------------------------------------------------


def test_the_sweep_fails_over_what_no_connector_took_and_settles_a_dead_connectors_claims(routes_mode, live):
    carrier = smpp_carrier(free_port())
    tenant, _ = live
    waiting = send(live, to="+447911130019")
    Message.unscoped.filter(pk=waiting.pk).update(status=Status.SENDING, attempts=1)
    pending = MessageAttempt.unscoped.create(tenant=tenant, message=waiting, number=1, route=carrier.routes.first(),
                                             carrier=carrier.name, outcome=Outcome.PENDING)
    MessageAttempt.unscoped.filter(pk=pending.pk).update(started_at=timezone.now() - timedelta(seconds=60))
    [orphan] = _held(live, "dead-host", 1, carrier)
    [kept] = _held(live, "live-host", 1, carrier)
    long_ago = timezone.now() - timedelta(seconds=120)
    MessageAttempt.unscoped.filter(pk__in=[orphan.pk, kept.pk]).update(claimed_at=long_ago)
    ConnectorLease.objects.create(name="dead-host", heartbeat_at=long_ago)
    ConnectorLease.objects.create(name="live-host", heartbeat_at=timezone.now())

    assert claims.connector_claims_sweep() == {"pickup_failovers": 1, "unknown": 1}

    assert status_of(waiting) == Status.QUEUED  # its next dispatch takes the next route
    assert MessageAttempt.unscoped.get(pk=pending.pk).error_code == "connector_pickup"
    assert Message.unscoped.get(pk=orphan.message_id).error_code == "submit_unknown"
    assert MessageAttempt.unscoped.get(pk=kept.pk).outcome == Outcome.SUBMITTING  # its connector still beats


def test_the_stuck_sending_reclaim_leaves_connector_attempts_alone(routes_mode, live, settings):
    from messaging.pipeline import messages_sweep

    carrier = smpp_carrier(free_port())
    [held] = _held(live, "live-host", 1, carrier)
    ConnectorLease.objects.create(name="live-host", heartbeat_at=timezone.now())
    Message.unscoped.filter(pk=held.message_id).update(
        status_changed_at=timezone.now() - timedelta(seconds=settings.MESSAGE_STUCK_SECONDS + 60))
    assert messages_sweep()["reclaimed"] == 0
    assert Message.unscoped.get(pk=held.message_id).status == Status.SENDING


# --- kill -9 of the connector process ----------------------------------------------------------------------------


def _connector_process(tmp_path: Path, name: str) -> subprocess.Popen:
    env = server_env(LIVE_CARRIER="routes", CONNECTOR_JOURNAL_DIR=str(tmp_path / "journal"),
                     CONNECTOR_HEARTBEAT_SECONDS="0.2", PYTHONUNBUFFERED="1", REDIS_URL="")
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen([sys.executable, "manage.py", "connector", "--name", name], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_kill_9_mid_run_loses_nothing_and_sends_nothing_twice_but_the_unknown(routes_mode, live, tmp_path):
    """400 messages over the store-and-forward SMSC (smsc.js); the connector is killed -9 after the SMSC has seen
    150 of them, and started again. Five go to a destination the SMSC never answers: in flight at the kill, their
    outcome is unknown. Receipts the killed run had not answered come again after the restart."""
    smsc = LocalSmsc(tmp_path / "submits.jsonl", silent_suffix="222")
    carrier = smpp_carrier(smsc.port, window=20, submit_timeout=60)
    process = _connector_process(tmp_path, "chaos")
    try:
        assert wait_until(lambda: bound(carrier), 20)
        routing_cache_clear()
        silent = [send(live, to=f"+4479111{i:02d}222") for i in range(5)]  # never answered by the SMSC
        messages = [send(live, to=f"+4479112{i:04d}9") for i in range(400)] + silent
        dispatch.messages_dispatch(message_ids=[m.pk for m in silent])  # in the window, unanswered, at the kill
        dispatch.messages_dispatch(message_ids=[m.pk for m in messages[:400]])
        assert wait_until(lambda: smsc.stats()["submit_sm"] >= 150, 30)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        at_kill = smsc.stats()
        process = _connector_process(tmp_path, "chaos")
        final = {Status.DELIVERED, Status.FAILED}
        ids = [m.pk for m in messages]
        assert wait_until(lambda: Message.unscoped.filter(pk__in=ids, status__in=final).count() == len(messages),
                          60), list(Message.unscoped.exclude(status__in=final).values_list("status")[:5])
    finally:
        process.terminate()
        process.wait(20)
        time.sleep(0.2)  # the SMSC's log is written in batches
        smsc.stop()
    submits = [entry["destination"] for entry in smsc.submits()]
    unknown = Message.unscoped.filter(pk__in=ids, error_code="submit_unknown")
    twice = {to for to in submits if submits.count(to) > 1}
    print(f"kill -9: {at_kill['submit_sm']} submit_sm before the kill ({at_kill['receipts_pending']} receipts "
          f"unanswered), {len(submits)} in all, {unknown.count()} unknown")
    assert {m.to.lstrip("+") for m in silent} <= {m.to.lstrip("+") for m in unknown}
    assert unknown.count() <= 20  # at most the window: journalled `S` only once it had its slot
    assert not twice  # at most once: nothing is sent again, not even the unknown ones
    delivered = Message.unscoped.filter(pk__in=ids, status=Status.DELIVERED)
    assert delivered.count() == len(messages) - unknown.count()  # every receipt came, the unanswered ones again
    # none lost: every message is final, and each one not unknown reached the SMSC; an unknown one was journalled as
    # going out, and may or may not have left the process before the kill (so it is failed, never sent again)
    known_to = {m.to.lstrip("+") for m in messages} - {m.to.lstrip("+") for m in unknown}
    assert known_to <= set(submits) <= {m.to.lstrip("+") for m in messages}
