"""The SMPP session against a real SMSC peer (node-smpp, messaging/tests/smpp_peer/server.js) on loopback."""
from __future__ import annotations

import threading
import time

import pytest

from messaging.carriers.base import CarrierError, PermanentError, RouteError, TransientError
from messaging.carriers.config import CarrierConfig, CarrierInbound, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.smpp import BIND_REFUSED, SmppSession
from messaging.encoding import analyze, split
from messaging.tests.smpp_server import Peer, free_port, wait_until


@pytest.fixture
def peer():
    server = Peer(free_port())
    yield server
    server.stop()


class Recorder:
    """What the session handed back, in the order it did."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def done(self, message: OutboundMessage, outcome: Submitted | CarrierError) -> None:
        with self.lock:
            self.events.append(("done", outcome))

    def receipt(self, receipt: CarrierReceipt) -> None:
        with self.lock:
            self.events.append(("receipt", receipt))

    def inbound(self, inbound: CarrierInbound) -> None:
        with self.lock:
            self.events.append(("inbound", inbound))

    def of(self, kind: str) -> list:
        with self.lock:
            return [value for name, value in self.events if name == kind]


def session_for(peer: Peer, recorder: Recorder | None = None, *, password: str = "secret", **settings) -> SmppSession:  # noqa: S107
    values = {"host": "127.0.0.1", "port": peer.port, "system_id": "smsportal", "window": 10,
              "enquire_link_seconds": 30, "submit_timeout_seconds": 2, "reconnect_min_seconds": 0.2,
              "reconnect_max_seconds": 1.0, **settings}
    config = CarrierConfig(name="peer", kind="smpp", settings=values, credentials={"password": password})
    recorder = recorder or Recorder()
    return SmppSession(config, on_receipt=recorder.receipt, on_inbound=recorder.inbound).start()


@pytest.fixture
def bound(peer):
    sessions = []

    def make(recorder=None, **settings):
        session = session_for(peer, recorder, **settings)
        sessions.append(session)
        assert session.wait_bound(5)
        return session

    yield make
    for session in sessions:
        session.close()


def message(to: str = "+447700900123", text: str = "Hello", sender: str = "Acme") -> OutboundMessage:
    return OutboundMessage(reference="msg_1", to=to, sender=sender, text=text, encoding=analyze(text).encoding)


def test_it_reports_a_refused_bind_and_backs_off(peer):
    session = session_for(peer, password="wrong")
    try:
        assert wait_until(lambda: session.state == BIND_REFUSED)
        assert session.last_error.code == "bind_refused"
        assert session.last_error.carrier_error_code == "0x0000000E"
        time.sleep(1.0)
        attempts = len(peer.matching(lambda event: event["event"] == "bind"))
        assert 2 <= attempts <= 5  # 0.1-0.2 s, then 0.2-0.4, 0.4-0.8 ...: backing off, not spinning
        assert not session.is_bound
        assert not peer.matching(lambda event: event["event"] == "bind" and event["ok"])
    finally:
        session.close()


def test_the_bind_password_is_never_logged_even_at_debug(peer, bound, caplog):
    """smpplib logs every PDU as hex at DEBUG, the bind with its password too: not through our sessions."""
    import logging

    caplog.set_level(logging.DEBUG)
    session = bound()
    session.submit(message(), lambda *_: None)
    assert wait_until(lambda: peer.matching(lambda event: event.get("command") == "submit_sm"))
    logged = caplog.text.lower()
    assert "secret" not in logged and b"secret".hex() not in logged
    assert any(record.name.startswith("messaging.carriers.smpp") for record in caplog.records)


def test_a_submit_smpplib_cannot_encode_gets_a_route_error_and_the_session_goes_on(peer, bound):
    """A carrier misconfigured with a TON out of range: smpplib cannot encode that submit_sm (struct.error).
    The message gets one outcome (a route error: failover), nothing stays in the window, and the next message
    over another sender kind goes out."""
    recorder = Recorder()
    session = bound(recorder, source_ton_npi={"alphanumeric": [300, 0]})
    session.submit(message(sender="Acme"), recorder.done)
    assert wait_until(lambda: recorder.of("done"))
    [outcome] = recorder.of("done")
    assert isinstance(outcome, RouteError) and outcome.code == "submit_failed"
    session.submit(message(sender="+447700900999"), recorder.done)
    assert wait_until(lambda: len(recorder.of("done")) == 2)
    assert isinstance(recorder.of("done")[1], Submitted)
    time.sleep(2.5)  # past submit_timeout_seconds: the failed one left no slot to expire into a second outcome
    assert len(recorder.of("done")) == 2


def test_it_keeps_a_window_of_submits_outstanding(peer, bound):
    session = bound(window=5)
    outcomes = session.submit_many([message(to=f"+4477009{index:02d}555") for index in range(8)])
    assert all(isinstance(outcome, Submitted) for outcome in outcomes)
    peer.wait_pdus("submit_sm", 8)
    # the peer logs in the order it handles: five submits, then the first answer frees the sixth slot
    order = peer.matching(lambda e: e["event"] == "sent" or e.get("command") == "submit_sm")
    first_resp = next(i for i, event in enumerate(order) if event["event"] == "sent")
    assert first_resp == 5
    assert max(event["max_outstanding"] for event in peer.matching(lambda e: e["event"] == "sent")) == 5
    assert len({outcome.carrier_message_id for outcome in outcomes}) == 8


def test_it_reports_throttling_and_pauses_sending(peer, bound):
    session = bound(throttle_pause_seconds=0.5)
    throttled, after = session.submit_many([message(to="+447700900444")]) + session.submit_many([message()])
    assert isinstance(throttled, TransientError) and not isinstance(throttled, RouteError)
    assert (throttled.code, throttled.carrier_error_code) == ("throttled", "0x00000058")
    assert isinstance(after, Submitted)
    first, second = peer.wait_pdus("submit_sm", 2)
    assert second["t"] - first["t"] >= 450


def test_it_classifies_error_statuses_and_times_out(peer, bound):
    session = bound(submit_timeout_seconds=0.5)
    invalid, system, silent = session.submit_many(
        [message(to="+447700900011"), message(to="+447700900008"), message(to="+447700900222")])
    assert isinstance(invalid, PermanentError) and invalid.code == "invalid_destination"
    assert isinstance(system, RouteError) and system.code == "carrier_system_error"
    assert isinstance(silent, RouteError) and silent.code == "submit_timeout"


def test_it_sends_addresses_and_asks_for_receipts(peer, bound):
    session = bound()
    session.submit_many([message(sender="Acme"), message(sender="+447700900999"), message(sender="12345")])
    alpha, international, short = peer.wait_pdus("submit_sm", 3)
    assert (alpha["source_addr_ton"], alpha["source_addr_npi"], alpha["source_addr"]) == (5, 0, "Acme")
    assert (international["source_addr_ton"], international["source_addr"]) == (1, "447700900999")
    assert (short["source_addr_ton"], short["source_addr_npi"]) == (3, 0)
    assert (alpha["dest_addr_ton"], alpha["dest_addr_npi"], alpha["destination_addr"]) == (1, 1, "447700900123")
    assert alpha["registered_delivery"] == 1


def test_a_carriers_own_ton_npi_and_default_data_coding_are_what_goes_out(peer, bound):
    """carriers_load's `source_ton_npi` and `default_data_coding`, as a carrier asks for them: every sender
    kind with its own TON/NPI, GSM-7 text with the carrier's data_coding, UCS-2 still 8."""
    session = bound(source_ton_npi={"alphanumeric": [5, 1], "international": [1, 8], "short_code": [6, 0]},
                    default_data_coding=1)
    session.submit_many([message(sender="Acme"), message(sender="+447700900999"), message(sender="12345"),
                         message(sender="Acme", text="Привет")])
    alpha, international, short, ucs2 = peer.wait_pdus("submit_sm", 4)
    assert (alpha["source_addr_ton"], alpha["source_addr_npi"]) == (5, 1)
    assert (international["source_addr_ton"], international["source_addr_npi"]) == (1, 8)
    assert (short["source_addr_ton"], short["source_addr_npi"]) == (6, 0)
    assert (alpha["data_coding"], ucs2["data_coding"]) == (1, 8)


@pytest.mark.parametrize("text", [
    "€[]{} " * 30 + "tail",  # GSM-7 with escapes: 2 septets each, never split across parts
    "Привет, мир! " * 12,  # UCS-2
])
def test_it_sends_long_messages_in_concatenated_parts(peer, bound, text):
    session = bound()
    result = analyze(text)
    (outcome,) = session.submit_many([message(text=text)])
    parts = peer.wait_pdus("submit_sm", result.segment_count)
    assert len(parts) == result.segment_count == len(split(text, result.encoding)) > 1
    assert len(outcome.carrier_message_ids) == len(parts)
    assert [part["text"] for part in parts] == result.segments
    assert "".join(part["text"] for part in parts) == text
    assert {part["data_coding"] for part in parts} == {0 if result.encoding == "GSM-7" else 8}
    assert all(part["esm_class"] & 0x40 for part in parts)
    udhs = [part["udh"][0] for part in parts]
    assert {udh[:6] for udh in udhs} == {"000300"[:2] + "03" + udhs[0][4:6]}
    assert [udh[6:] for udh in udhs] == [f"{len(parts):02x}{number:02x}" for number in range(1, len(parts) + 1)]


@pytest.mark.parametrize("text", ["€[]{}", "Grüße from Zoë ✓"])
def test_it_sends_single_messages_the_peer_decodes(peer, bound, text):
    session = bound()
    (outcome,) = session.submit_many([message(text=text)])
    (part,) = peer.wait_pdus("submit_sm", 1)
    assert isinstance(outcome, Submitted)
    assert part["text"] == text and part["udh"] == []
    assert part["data_coding"] == (0 if analyze(text).encoding == "GSM-7" else 8)


def test_it_parses_text_receipts(peer, bound):
    recorder = Recorder()
    session = bound(recorder)
    peer.command("config", receipts="text", stat="DELIVRD")
    (outcome,) = session.submit_many([message()])
    assert wait_until(lambda: recorder.of("receipt"))
    (receipt,) = recorder.of("receipt")
    assert (receipt.carrier_message_id, receipt.status) == (outcome.carrier_message_id, "delivered")
    assert receipt.done_at is not None and receipt.done_at.year == 2024
    assert peer.wait_for(lambda event: event["event"] == "receipt_resp")[0]["command_status"] == 0


def test_it_prefers_the_receipt_tlvs_to_the_text(peer, bound):
    recorder = Recorder()
    session = bound(recorder)
    peer.command("config", receipts="tlv", stat="DELIVRD", tlv_stat="UNDELIV", tlv_text_id="SOMETHINGELSE")
    (outcome,) = session.submit_many([message()])
    assert wait_until(lambda: recorder.of("receipt"))
    (receipt,) = recorder.of("receipt")
    assert (receipt.carrier_message_id, receipt.status) == (outcome.carrier_message_id, "undelivered")


def test_it_parks_a_receipt_that_overtakes_its_submit_resp(peer, bound):
    recorder = Recorder()
    session = bound(recorder)
    peer.command("config", receipts="text")
    session.submit(message(to="+447700900777"), recorder.done)
    assert wait_until(lambda: recorder.of("receipt"))
    (outcome,) = recorder.of("done")
    kinds = [kind for kind, _ in recorder.events]
    assert kinds == ["done", "receipt"]  # the SMSC sent them the other way round:
    sent = [event["event"] for event in peer.matching(lambda e: e["event"] in ("receipt_sent", "sent"))]
    assert sent == ["receipt_sent", "sent"]
    assert recorder.of("receipt")[0].carrier_message_id == outcome.carrier_message_id


def test_a_long_messages_first_receipt_waits_for_its_last_part(peer, bound):
    """max_mps 2 spaces the parts: the first part's receipt comes while the next part is not even sent."""
    recorder = Recorder()
    session = bound(recorder, max_mps=2)
    peer.command("config", receipts="text")
    session.submit(message(text="A long message. " * 20), recorder.done)  # GSM-7, 320 characters: 3 parts
    assert wait_until(lambda: len(recorder.of("receipt")) == 3, 10)
    assert peer.matching(lambda e: e["event"] == "receipt_sent")  # the first receipt before the last part:
    order = [event["event"] for event in peer.matching(lambda e: e["event"] in ("receipt_sent", "sent"))]
    assert order.index("receipt_sent") < len(order) - 1 - order[::-1].index("sent")
    kinds = [kind for kind, _ in recorder.events]
    assert kinds == ["done", "receipt", "receipt", "receipt"]
    (outcome,) = recorder.of("done")
    assert {r.carrier_message_id for r in recorder.of("receipt")} == set(outcome.carrier_message_ids)


def gsm_hex(text: str) -> str:
    from messaging.carriers.smpp.codec import gsm_encode

    return gsm_encode(text).hex()


def test_it_receives_a_single_mo(peer, bound):
    recorder = Recorder()
    bound(recorder)
    peer.command("mo", **{"from": "447700900555", "to": "447700900001", "parts": [{"hex": gsm_hex("Hi € there")}]})
    assert wait_until(lambda: recorder.of("inbound"))
    (inbound,) = recorder.of("inbound")
    assert (inbound.sender, inbound.to, inbound.text) == ("+447700900555", "+447700900001", "Hi € there")
    assert peer.wait_for(lambda event: event["event"] == "mo_resp")[0]["command_status"] == 0


@pytest.mark.parametrize("form", ["udh8", "udh16", "sar"])
def test_it_reassembles_long_mo_in_any_order(peer, bound, form):
    recorder = Recorder()
    bound(recorder)
    chunks = ["First part, ", "second part, ", "third € part."]
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        part = {"hex": gsm_hex(chunk)}
        if form == "udh8":
            part["udh"] = f"050003aa03{number:02x}"
        elif form == "udh16":
            part["udh"] = f"060804beef03{number:02x}"
        else:
            part.update(sar_msg_ref_num=513, sar_total_segments=3, sar_segment_seqnum=number)
        parts.append(part)
    peer.command("mo", **{"from": "447700900555", "to": "447700900001", "parts": parts[::-1]})
    assert wait_until(lambda: len(peer.matching(lambda e: e["event"] == "mo_resp")) == 3)
    assert wait_until(lambda: recorder.of("inbound"))
    (inbound,) = recorder.of("inbound")
    assert inbound.text == "".join(chunks)


def test_an_mo_delivered_again_on_another_session_keeps_its_dedupe_key(peer, bound):
    # given an MO received on one session; then a second session, and the peer delivers another MO and the
    # first one again on both (so on the second session with other sequence numbers than the first time)
    mo = {"from": "447700900555", "to": "447700900001", "parts": [{"hex": gsm_hex("HELP")}]}
    first, second = Recorder(), Recorder()
    bound(first)
    peer.command("mo", **mo)
    assert wait_until(lambda: first.of("inbound"))
    bound(second)
    peer.command("mo", **{**mo, "parts": [{"hex": gsm_hex("something else")}]})
    peer.command("mo", **mo)
    assert wait_until(lambda: len(second.of("inbound")) == 2 and len(first.of("inbound")) == 3)
    # then every delivery of it has the same key, and the other MO its own
    received = first.of("inbound") + second.of("inbound")
    help_keys = {inbound.dedupe_key for inbound in received if inbound.text == "HELP"}
    other_keys = {inbound.dedupe_key for inbound in received if inbound.text != "HELP"}
    assert len(help_keys) == 1 and len(other_keys) == 1 and help_keys != other_keys
    assert help_keys.pop().startswith("smpp-mo-")
    assert {inbound.carrier_message_id for inbound in received} == {""}  # the store gives each row its id


def test_an_mo_with_the_smscs_own_id_is_known_by_it(peer, bound):
    recorder = Recorder()
    bound(recorder)
    for reference in (1, 2):  # the same text twice from the handset: two messages
        peer.command("mo", **{"from": "447700900555", "to": "447700900001",
                              "parts": [{"hex": gsm_hex("YES"), "user_message_reference": reference}]})
    peer.command("mo", **{"from": "447700900555", "to": "447700900001",
                          "parts": [{"hex": gsm_hex("YES"), "receipted_message_id": "MO-77"}]})
    assert wait_until(lambda: len(recorder.of("inbound")) == 3)
    keys = [inbound.dedupe_key for inbound in recorder.of("inbound")]
    assert keys[2] == "smpp-mo-id-MO-77" and len(set(keys)) == 3


def test_it_receives_ucs2_mo(peer, bound):
    recorder = Recorder()
    bound(recorder)
    peer.command("mo", **{"from": "447700900555", "to": "447700900001", "data_coding": 8,
                          "parts": [{"hex": "Ответ 👍".encode("utf-16-be").hex()}]})
    assert wait_until(lambda: recorder.of("inbound"))
    assert recorder.of("inbound")[0].text == "Ответ 👍"


def test_it_sends_and_answers_enquire_link(peer, bound):
    session = bound(enquire_link_seconds=0.3)
    peer.wait_for(lambda event: event["event"] == "pdu" and event["command"] == "enquire_link", count=2, timeout=3)
    peer.command("enquire_link")
    peer.wait_for(lambda event: event["event"] == "enquire_link_resp_got")
    assert session.is_bound and session.binds == 1


def test_it_rebinds_when_enquire_link_goes_unanswered(peer, bound):
    session = bound(enquire_link_seconds=0.3, enquire_link_timeout_seconds=0.3)
    peer.command("config", answer_enquire_link=False)
    assert wait_until(lambda: session.binds >= 2, timeout=5)


def test_it_rebinds_after_the_peer_restarts(peer):
    session = session_for(peer)
    try:
        assert session.wait_bound(5)
        peer.stop()
        assert wait_until(lambda: not session.is_bound)
        assert session.submit_many([message()])[0].code == "not_bound"
        again = Peer(peer.port)
        try:
            assert session.wait_bound(5)
            assert session.binds == 2
            (outcome,) = session.submit_many([message()])
            assert isinstance(outcome, Submitted)
            assert len(again.wait_pdus("submit_sm", 1)) == 1
        finally:
            session.close()
            again.stop()
    finally:
        session.close()


def test_close_unbinds_and_joins_its_threads(peer):
    session = session_for(peer)
    assert session.wait_bound(5)
    session.close()
    peer.wait_for(lambda event: event["event"] == "pdu" and event["command"] == "unbind")
    assert session.state == "closed"
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("smpp-peer-")]
