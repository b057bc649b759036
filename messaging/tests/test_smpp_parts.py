"""The SMPP client's pieces without a peer: receipt parsing and parking, MO reassembly, codec, errors, max_mps."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from messaging.carriers.base import PermanentError, RouteError, TransientError
from messaging.carriers.config import CarrierReceipt
from messaging.carriers.smpp import receipts as receipts_module
from messaging.carriers.smpp.codec import Concatenation, decode_text, gsm_decode, gsm_encode, message_parts, split_udh
from messaging.carriers.smpp.errors import status_error
from messaging.carriers.smpp.inbound import Reassembler, e164, mo_dedupe_key, mo_inbound
from messaging.carriers.smpp.ratelimit import LocalBucket, RedisBucket, wait_for_token
from messaging.carriers.smpp.receipts import ReceiptParking, receipt_date, receipt_fields, receipt_parse
from messaging.encoding import GSM7_BASIC_TABLE, GSM7_EXTENSION_TABLE, split

TEXT = "id:7ab3 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_parses_the_receipt_text():
    receipt = receipt_parse(TEXT)
    assert (receipt.carrier_message_id, receipt.status, receipt.carrier_error_code) == ("7ab3", "delivered", "000")
    assert receipt.done_at.isoformat() == "2024-01-01T12:01:00+00:00"
    assert receipt_fields(TEXT)["text"] == "Hello world"


@pytest.mark.parametrize(("stat", "status"), [
    ("DELIVRD", "delivered"), ("undeliv", "undelivered"), ("EXPIRED", "expired"), ("REJECTD", "rejected"),
    ("DELETED", "undelivered"), ("ACCEPTD", "accepted"), ("ENROUTE", "enroute"), ("UNKNOWN", "unknown"),
    ("WHATEVER", "unknown"), ("", "unknown"),
])
def test_it_maps_every_stat(stat, status):
    assert receipt_parse(f"ID:42 STAT:{stat}").status == status


def test_it_is_lenient_about_fields():
    receipt = receipt_parse("stat:UNDELIV  extra:thing id:99 err:0x0B garbage")
    assert (receipt.carrier_message_id, receipt.status, receipt.carrier_error_code) == ("99", "undelivered", "0x0B")
    assert receipt.done_at is None
    assert receipt_parse("no fields here at all") is None


def test_the_tlvs_win_over_the_text():
    receipt = receipt_parse(TEXT, tlv_message_id="FF01", tlv_state=5)
    assert (receipt.carrier_message_id, receipt.status) == ("FF01", "undelivered")
    assert receipt_parse("garbage", tlv_message_id="FF02", tlv_state=99).status == "unknown"


@given(st.text())
def test_the_receipt_parser_never_raises_on_text(text):
    receipt = receipt_parse(text)
    assert receipt is None or receipt.status in {"delivered", "undelivered", "expired", "rejected", "accepted",
                                                 "enroute", "unknown"}


@given(st.binary())
def test_the_receipt_parser_never_raises_on_bytes(data):
    receipt = receipt_parse(data.decode("latin-1"))
    assert receipt is None or isinstance(receipt, CarrierReceipt)


_token = st.text(alphabet="0123456789abcdefABCDEF-_x", min_size=0, max_size=12)


@given(message_id=_token.filter(bool), sub=_token, dlvrd=_token, submit=st.text("0123456789", max_size=12),
       done=st.text("0123456789", max_size=12), stat=_token, err=_token, tail=st.none() | st.text(max_size=40),
       upper=st.booleans())
def test_the_canonical_layouts_fast_path_reads_what_the_lenient_parser_does(message_id, sub, dlvrd, submit, done,
                                                                             stat, err, tail, upper):
    text = (f"id:{message_id} sub:{sub} dlvrd:{dlvrd} submit date:{submit} done date:{done} stat:{stat} err:{err}"
            + ("" if tail is None else f" text:{tail}"))
    text = text.upper() if upper else text
    assert receipts_module._CANONICAL.match(text) is not None  # the fast path took it
    assert receipt_fields(text) == receipts_module._receipt_fields_lenient(text)


@given(st.text("0123456789", min_size=10, max_size=12) | st.text(max_size=14))
def test_receipt_dates_read_as_strptime_does(value):
    from datetime import UTC, datetime

    expected = None
    layout = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(value.strip()))
    if layout and value.strip().isascii() and value.strip().isdigit():
        try:
            expected = datetime.strptime(value.strip(), layout).replace(tzinfo=UTC)
        except ValueError:
            pass
    assert receipt_date(value) == expected


def receipt(message_id: str) -> CarrierReceipt:
    return CarrierReceipt(carrier_message_id=message_id, status="delivered")


def test_parking_holds_a_receipt_until_its_id_is_known():
    parking = ReceiptParking(hold_seconds=5, clock=Clock())
    assert parking.offer(receipt("A")) is False
    assert len(parking) == 1
    assert parking.known("A") == [receipt("A")]
    assert len(parking) == 0
    assert parking.offer(receipt("A")) is True  # known now: apply at once


def test_parking_hands_on_receipts_after_the_hold():
    clock = Clock()
    parking = ReceiptParking(hold_seconds=5, clock=clock)
    parking.offer(receipt("B"))
    clock.now += 4.9
    assert parking.due() == []
    clock.now += 0.2
    assert parking.due() == [receipt("B")]
    assert parking.known("B") == []


def test_parking_forgets_old_ids():
    clock = Clock()
    parking = ReceiptParking(remember_seconds=60, clock=clock)
    parking.known("C")
    clock.now += 61
    parking.known("D")
    assert parking.offer(receipt("C")) is False
    assert parking.release_all() == [receipt("C")]


def test_reassembly_joins_parts_in_any_order_and_drops_incomplete_ones():
    clock = Clock()
    reassembler = Reassembler(timeout_seconds=10, clock=clock)
    add = dict(sender="+1", to="+2", data_coding=0)
    assert reassembler.add(concatenation=Concatenation(7, 2, 2), payload=gsm_encode("world"), **add) is None
    assert reassembler.add(concatenation=Concatenation(7, 2, 1), payload=gsm_encode("hello "), **add) == "hello world"
    reassembler.add(concatenation=Concatenation(8, 3, 1), payload=b"x", **add)
    clock.now += 11
    assert reassembler.expire() == 1 and len(reassembler) == 0


MO = {"sender": "+447700900555", "to": "+447700900001", "text": "STOP"}


def test_an_mo_has_the_same_key_whenever_it_is_delivered_again():
    # no time goes into the key: the inbound store measures the redelivery time from the stored MO
    key = mo_dedupe_key(**MO)
    assert key.startswith("smpp-mo-") and len(key) <= 100
    assert mo_dedupe_key(**MO) == key


@pytest.mark.parametrize("change", [{"text": "STOP "}, {"sender": "+447700900556"}, {"to": "+447700900002"},
                                    {"reference": 7}, {"concatenation": Concatenation(9, 2, 2)}])
def test_another_mo_has_another_key(change):
    assert mo_dedupe_key(**{**MO, **change}) != mo_dedupe_key(**MO)


def test_the_smscs_own_mo_id_wins():
    assert mo_dedupe_key(message_id="MO-77", **MO) == "smpp-mo-id-MO-77"
    assert mo_dedupe_key(message_id="MO-78", **MO) != "smpp-mo-id-MO-77"


def test_a_long_mos_key_does_not_depend_on_which_part_came_last_nor_on_the_parts_own_ids():
    two = dict(MO, text="First part, second part.")
    at = datetime(2026, 12, 3, 10, 0, 30, tzinfo=UTC)
    first = mo_inbound(received_at=at, concatenation=Concatenation(9, 2, 1), message_id="P-1", **two)
    last = mo_inbound(received_at=at, concatenation=Concatenation(9, 2, 2), message_id="P-2", **two)
    assert first.dedupe_key == last.dedupe_key and first.dedupe_key.startswith("smpp-mo-") and "P-" not in first.dedupe_key


def test_every_gsm_character_round_trips():
    text = "".join(char for char in GSM7_BASIC_TABLE if char != "\x1b") + "".join(GSM7_EXTENSION_TABLE)
    assert gsm_decode(gsm_encode(text)) == text
    assert gsm_encode("€") == b"\x1b\x65" and gsm_encode("§") == b"\x5f"
    with pytest.raises(ValueError):
        gsm_encode("✓")


@given(st.text(alphabet=st.sampled_from([*GSM7_BASIC_TABLE, *GSM7_EXTENSION_TABLE, "✓", "é", "\x00"])))
def test_gsm_encoding_is_each_characters_septets_in_turn(text):
    from messaging.carriers.smpp.codec import _GSM_ENCODE

    if all(char in _GSM_ENCODE for char in text):
        assert gsm_encode(text) == b"".join(_GSM_ENCODE[char] for char in text)
    else:
        with pytest.raises(ValueError, match="is not in the GSM-7 alphabet"):
            gsm_encode(text)


def test_parts_follow_our_segment_count_and_never_split_an_escape():
    text = "a" * 152 + "€" + "b" * 10
    parts = message_parts(text, "GSM-7", reference=300)
    assert len(parts) == len(split(text, "GSM-7")) == 2
    assert parts[0].short_message[:6] == bytes([5, 0, 3, 300 % 256, 2, 1])
    assert [gsm_decode(split_udh(part.short_message)[1]) for part in parts] == split(text, "GSM-7")


def test_udh_parsing_reads_both_reference_sizes():
    assert split_udh(bytes.fromhex("0500030a0201") + b"hi") == (Concatenation(10, 2, 1), b"hi")
    assert split_udh(bytes.fromhex("06080401020302") + b"yo") == (Concatenation(258, 3, 2), b"yo")
    assert split_udh(bytes.fromhex("0401020000") + b"z") == (None, b"z")  # another element only


@pytest.mark.parametrize(("payload", "coding", "text"), [
    (gsm_encode("Hi €"), 0, "Hi €"), (b"Hi", 1, "Hi"), ("Grüße".encode("latin-1"), 3, "Grüße"),
    ("Ответ".encode("utf-16-be"), 8, "Ответ"), (b"\x01\xff", 4, "01ff"), (b"\x80\x1b\x01", 0, "??"),
])
def test_it_decodes_mo_text_by_data_coding(payload, coding, text):
    assert decode_text(payload, coding) == text


def test_addresses_become_e164():
    assert e164("447700900123", 1) == "+447700900123"
    assert e164("Acme", 5) == "Acme"


@pytest.mark.parametrize(("status", "kind", "code"), [
    (0x58, TransientError, "throttled"), (0x14, TransientError, "queue_full"),
    (0x0B, PermanentError, "invalid_destination"), (0x0A, PermanentError, "invalid_sender"),
    (0x08, RouteError, "carrier_system_error"), (0x0D, RouteError, "bind_error"), (0x400, RouteError, "carrier_error"),
])
def test_statuses_are_classified(status, kind, code):
    error = status_error(status)
    assert type(error) is kind and error.code == code and error.carrier_error_code == f"0x{status:08X}"


def test_the_local_bucket_gives_rate_tokens_a_second():
    clock = Clock()
    bucket = LocalBucket(rate=2, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.now += 0.5
    assert bucket.take() == 0.0


@pytest.fixture
def redis_db():
    client = redis.Redis.from_url("redis://127.0.0.1:6379/2", socket_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    yield client
    client.close()


def test_the_redis_bucket_is_shared_between_processes(redis_db):
    key = f"test:smpp:mps:{uuid.uuid4().hex}"
    first, second = RedisBucket(redis_db, key=key, rate=5), RedisBucket(redis_db, key=key, rate=5)
    takes = [bucket.take() for _ in range(4) for bucket in (first, second)]
    assert takes.count(0.0) == 5 and all(0 < wait <= 0.2 for wait in takes if wait)
    redis_db.delete(key)


def test_the_redis_bucket_keeps_the_rate_in_this_process_while_redis_is_away(caplog):
    """Nothing listens on the port (a refused connection on loopback): take() keeps to the rate with a local
    bucket instead of raising (which would stop the feeder), and says so once, not per message."""
    from messaging.tests.smpp_server import free_port

    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    bucket = RedisBucket(client, key="test:smpp:mps:away", rate=5)
    takes = [bucket.take() for _ in range(8)]
    assert takes.count(0.0) == 5 and all(0 < wait <= 0.2 for wait in takes if wait)
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


def test_waiting_for_a_token_stops_with_the_session():
    stop = threading.Event()
    stop.set()
    assert wait_for_token(LocalBucket(rate=0.001, burst=1), stop) is True  # the one token there
    assert wait_for_token(None, stop) is False
