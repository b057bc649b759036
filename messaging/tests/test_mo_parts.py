"""Long MO over SMPP stored part by part (messaging/connector/mo.py): every part in the database before it is
answered, the whole stored once, a redelivered part once, a restart between parts losing nothing, a part
that cannot be stored answered ESME_RX_T_APPN, and parts that never complete swept."""
from __future__ import annotations

from datetime import timedelta
from numbers.models import InboundMessage

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from messaging.carriers.config import CarrierConfig
from messaging.carriers.smpp.codec import Concatenation, gsm_encode
from messaging.carriers.smpp.inbound import MoPart
from messaging.carriers.smpp.session import ESME_RX_T_APPN
from messaging.carriers.smpp.settings import SessionSettings
from messaging.connector import mo
from messaging.models import Carrier, InboundPartial
from messaging.tasks import connector_claims_sweep_task

SENDER, TO = "+447700900555", "+447700900001"
CHUNKS = ["First part, ", "second part, ", "third € part."]
SETTINGS = SessionSettings.from_config(CarrierConfig(name="eu-smpp", kind="smpp", settings={
    "host": "127.0.0.1", "port": 1, "system_id": "smsportal"}, credentials={}))


def part(number: int, *, reference: int = 0xAA, total: int = 3, chunks=CHUNKS) -> MoPart:
    return MoPart(sender=SENDER, to=TO, concatenation=Concatenation(reference, total, number),
                  payload=gsm_encode(chunks[number - 1]), data_coding=0)


def receive(number: int, **kwargs):
    return mo.mo_part_receive(carrier="eu-smpp", part=part(number, **kwargs), settings=SETTINGS)


@pytest.mark.django_db
def test_each_part_is_stored_and_the_whole_mo_once_the_last_is_in():
    # given the first two parts, in any order: each stored, nothing handed to the inbound service yet
    assert receive(2) is None and receive(1) is None
    assert sorted(InboundPartial.objects.values_list("number", flat=True)) == [1, 2]
    assert not InboundMessage.unscoped.exists()
    # when the last part comes
    message = receive(3)
    # then the whole MO is stored once, from the stored parts (the € escape decoded across the join), and the
    # parts are gone
    assert message is not None and message.text == "".join(CHUNKS)
    assert list(InboundMessage.unscoped.values_list("sender", "to", "text")) == [(SENDER, TO, "".join(CHUNKS))]
    assert not InboundPartial.objects.exists()


@pytest.mark.django_db
def test_a_redelivered_part_is_stored_once():
    receive(1)
    receive(1)  # its deliver_sm_resp was lost: the SMSC delivers it again
    assert InboundPartial.objects.count() == 1
    receive(2)
    receive(3)
    assert list(InboundMessage.unscoped.values_list("text", flat=True)) == ["".join(CHUNKS)]


@pytest.mark.django_db
def test_two_messages_under_one_reference_with_other_part_counts_are_kept_apart():
    receive(1)
    two = ["Other ", "one."]
    assert receive(1, total=2, chunks=two) is None
    assert receive(2, total=2, chunks=two).text == "Other one."
    assert InboundPartial.objects.count() == 1  # the three-part one's first part waits for the rest


@pytest.mark.django_db
def test_parts_that_never_complete_are_swept_after_the_carriers_reassembly_time_and_logged(caplog):
    Carrier.objects.create(name="eu-smpp", kind=Carrier.Kind.SMPP, settings={"mo_reassembly_seconds": 60})
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        receive(1)
        receive(2)
    with time_machine.travel(start + timedelta(seconds=50), tick=False):
        receive(1, reference=0xBB)  # a younger one
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        assert connector_claims_sweep_task()["mo_dropped"] == 0
    with time_machine.travel(start + timedelta(seconds=61), tick=False), caplog.at_level("WARNING"):
        assert connector_claims_sweep_task()["mo_dropped"] == 1
    assert list(InboundPartial.objects.values_list("reference", "number")) == [(0xBB, 1)]
    (record,) = [r for r in caplog.records if "incomplete" in r.getMessage()]
    assert record.getMessage() == "connector eu-smpp: long MO ref 170 incomplete after 60 s (2 of 3 parts), dropped"
    # the dropped MO's last part, should it still come, starts over and is not stored as a whole
    assert receive(3) is None and not InboundMessage.unscoped.exists()


# --- over a real SMSC peer, through the connector process (PostgreSQL: its threads) --------------------------


def udh_parts(numbers: list[int]) -> list[dict]:
    return [{"udh": f"050003aa03{number:02x}", "hex": gsm_encode(CHUNKS[number - 1]).hex()} for number in numbers]


@pytest.fixture
def smpp(settings, tmp_path):
    from messaging.routing.cache import routing_cache_clear
    from messaging.routing.credentials import credentials_encrypt
    from messaging.tests.smpp_server import Peer, free_port

    if connection.vendor != "postgresql":
        pytest.skip("the connector's threads need PostgreSQL")
    settings.CONNECTOR_JOURNAL_DIR = str(tmp_path / "journal")
    settings.CONNECTOR_HEARTBEAT_SECONDS = 0.2
    settings.ROUTING_CACHE_SECONDS = 0
    routing_cache_clear()
    peer = Peer(free_port())
    carrier = Carrier.objects.create(name="eu-smpp", kind=Carrier.Kind.SMPP, settings={
        "host": "127.0.0.1", "port": peer.port, "system_id": "smsportal", "reconnect_min_seconds": 0.2,
        "reconnect_max_seconds": 1.0}, credentials_encrypted=credentials_encrypt({"password": "secret"}))
    yield peer, carrier
    peer.stop()
    routing_cache_clear()


def bound(carrier: Carrier) -> bool:
    carrier.refresh_from_db()
    return carrier.session_state == "bound"


def mo_statuses(peer) -> list[int]:
    return [event["command_status"] for event in peer.matching(lambda e: e["event"] == "mo_resp")]


@pytest.mark.django_db(transaction=True)
def test_a_long_mo_survives_a_connector_restart_between_its_parts(smpp):
    from messaging.tests.smpp_server import Running, wait_until

    peer, carrier = smpp
    # given two of three parts answered by one connector run, which then stops
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        peer.command("mo", **{"from": SENDER[1:], "to": TO[1:], "parts": udh_parts([1, 2])})
        assert wait_until(lambda: len(mo_statuses(peer)) == 2)
    assert mo_statuses(peer) == [0, 0]
    assert sorted(InboundPartial.objects.values_list("number", flat=True)) == [1, 2]  # stored before answered
    assert not InboundMessage.unscoped.exists()
    # when a new run gets the last part
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        peer.command("mo", **{"from": SENDER[1:], "to": TO[1:], "parts": udh_parts([3])})
        assert wait_until(lambda: len(mo_statuses(peer)) == 3)
    # then the whole MO is stored once and the parts are gone
    assert mo_statuses(peer) == [0, 0, 0]
    assert list(InboundMessage.unscoped.values_list("carrier", "text")) == [("eu-smpp", "".join(CHUNKS))]
    assert not InboundPartial.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_part_that_cannot_be_stored_is_answered_temporary_error_and_stored_when_delivered_again(smpp):
    from messaging.tests.smpp_server import Running, wait_until

    peer, carrier = smpp
    table = InboundPartial._meta.db_table
    with Running():
        assert wait_until(lambda: bound(carrier), 10)
        # given the parts' table gone (a real database error for the store)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        try:
            peer.command("mo", **{"from": SENDER[1:], "to": TO[1:], "parts": udh_parts([1])})
            assert wait_until(lambda: len(mo_statuses(peer)) == 1)
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        # then the part is answered ESME_RX_T_APPN: the SMSC still holds it
        assert mo_statuses(peer) == [ESME_RX_T_APPN]
        # when the SMSC delivers it again, with the rest
        peer.command("mo", **{"from": SENDER[1:], "to": TO[1:], "parts": udh_parts([1, 2, 3])})
        assert wait_until(lambda: len(mo_statuses(peer)) == 4)
    assert mo_statuses(peer) == [ESME_RX_T_APPN, 0, 0, 0]
    assert list(InboundMessage.unscoped.values_list("text", flat=True)) == ["".join(CHUNKS)]
    assert not InboundPartial.objects.exists()
