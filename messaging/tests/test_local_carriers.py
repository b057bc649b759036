"""make run's local carriers (messaging/carriers/local/): the store-and-forward SMSC smsc.js (node-smpp) against our
SMPP session and smpplib, the HTTP carrier against our generic preset, `manage.py local_carriers`, and seed_demo's
local carriers and routes with a live-key message over them."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import smpplib.client
from django.core.management import call_command
from django.db import connection

from accounts import selectors
from accounts.models import ApiKey, Tenant
from messaging import dispatch
from messaging.accept import message_send
from messaging.carriers.base import RouteError
from messaging.carriers.config import CarrierConfig, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.http import CallbackRefused, connector_from_config, receipts_from_callback
from messaging.carriers.local import demo
from messaging.carriers.local.http_carrier import HttpCarrier, receipt_signature
from messaging.carriers.local.processes import Child, smsc_argv
from messaging.carriers.smpp import BIND_REFUSED, SmppSession
from messaging.carriers.smpp.receipts import receipt_parse
from messaging.carriers.smpp.session import receipts_answer
from messaging.models import Carrier, Message, MessageAttempt, Route, Status
from messaging.routing.cache import routing_cache_clear
from messaging.routing.credentials import credentials_decrypt
from messaging.routing.models import RouteCost
from messaging.tests.smpp_server import Running, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
SYSTEM_ID, PASSWORD = "acme", "pw"  # noqa: S105 - the test SMSC's own
TEXT_RECEIPT = re.compile(r"^id:(\S+) sub:001 dlvrd:001 submit date:\d{10} done date:\d{10} stat:DELIVRD err:000 "
                          r"text:Your code is 123456$")


# --- the SMSC ----------------------------------------------------------------------------------------------------


class Smsc:
    """smsc.js on a free loopback port, with its --log and --stats-port."""

    def __init__(self, tmp_path: Path, *, system_id: str = SYSTEM_ID, password: str = PASSWORD) -> None:
        if shutil.which("node") is None:
            pytest.skip("node is not installed (the local SMSC runs on node-smpp)")
        self.log = tmp_path / "smsc.jsonl"
        self.child = Child("smpp", smsc_argv(port=0, system_id=system_id, password=password, undeliverable_suffix="999",
                                             log=str(self.log), stats_port=0)).start()
        self.port, self.stats_port = self.child.port, int(self.child.lines["stats"])

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats", timeout=5) as answer:  # noqa: S310 - loopback
            return json.load(answer)

    def logged(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def stop(self) -> None:
        self.child.stop()


@pytest.fixture
def smsc(tmp_path):
    server = Smsc(tmp_path)
    yield server
    server.stop()


def smpp_config(port: int, *, system_id: str = SYSTEM_ID, password: str = PASSWORD) -> CarrierConfig:
    return CarrierConfig(name="local", kind="smpp", credentials={"password": password}, settings={
        "host": "127.0.0.1", "port": port, "system_id": system_id, "window": 10, "enquire_link_seconds": 30,
        "submit_timeout_seconds": 3, "reconnect_min_seconds": 0.2, "reconnect_max_seconds": 1.0})


class Receipts:
    """A session's on_receipt: what it got, in order."""

    def __init__(self) -> None:
        self.got: list[CarrierReceipt] = []
        self._lock = threading.Lock()

    def __call__(self, receipt: CarrierReceipt) -> None:
        with self._lock:
            self.got.append(receipt)

    def ids(self) -> list[str]:
        with self._lock:
            return [receipt.carrier_message_id for receipt in self.got]


def message(to: str = "+447911123456", text: str = "Your code is 123456", encoding: str = "GSM-7") -> OutboundMessage:
    return OutboundMessage(reference="msg_test", to=to, sender="Acme", text=text, encoding=encoding)


def test_a_bind_with_a_wrong_password_is_refused(smsc):
    session = SmppSession(smpp_config(smsc.port, password="wrong")).start()
    try:
        assert wait_until(lambda: session.state == BIND_REFUSED, 10)
        assert (session.last_error.code, session.last_error.carrier_error_code) == ("bind_refused", "0x0000000D")
    finally:
        session.close()
    stats = smsc.stats()
    assert stats["bind_refused"] >= 1 and stats["binds"] == 0


def test_a_submit_is_answered_and_its_receipt_comes_in_text_and_tlv_form(smsc):
    """Seen through smpplib, not our session: the raw deliver_sm's text and TLVs."""
    client = smpplib.client.Client("127.0.0.1", smsc.port, timeout=5, allow_unknown_opt_params=True)
    answers, delivered = [], []
    client.set_message_sent_handler(lambda pdu: answers.append(pdu))
    client.set_message_received_handler(lambda pdu: delivered.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        client.send_message(source_addr="Acme", source_addr_ton=5, destination_addr="447911123456", dest_addr_ton=1,
                            dest_addr_npi=1, data_coding=0, registered_delivery=1, short_message=b"Your code is 123456")
        while not (answers and delivered):
            client.read_once()  # answers the deliver_sm (deliver_sm_resp, status 0)
    finally:
        client.unbind()
        client.disconnect()
    carrier_id = answers[0].message_id.decode()
    [receipt] = delivered
    text = receipt.short_message.decode("latin-1")
    assert TEXT_RECEIPT.match(text).group(1) == carrier_id
    assert receipt.receipted_message_id.decode().strip("\x00") == carrier_id and receipt.message_state == 2
    assert receipt.esm_class & 0x04 and receipt.source_addr.decode() == "447911123456"
    assert receipt_parse(text) == CarrierReceipt(carrier_message_id=carrier_id, status="delivered",
                                                 carrier_error_code="000", done_at=receipt_parse(text).done_at,
                                                 detail="receipt: DELIVRD")
    assert wait_until(lambda: smsc.stats()["receipts_acked"] == 1)
    assert smsc.stats()["receipts_pending"] == 0


def test_a_destination_ending_in_the_undeliverable_suffix_comes_back_undelivered(smsc):
    receipts = Receipts()
    session = SmppSession(smpp_config(smsc.port), on_receipt=receipts).start()
    try:
        assert session.wait_bound(10)
        good, bad = session.submit_many([message("+447911123456"), message("+447911123999")])
        assert wait_until(lambda: len(receipts.got) == 2)
    finally:
        session.close()
    status = {receipt.carrier_message_id: receipt.status for receipt in receipts.got}
    assert status == {good.carrier_message_id: "delivered", bad.carrier_message_id: "undelivered"}
    assert next(r.detail for r in receipts.got if r.status == "undelivered") == "receipt: UNDELIV err:001"


def test_the_log_has_a_line_per_submit_sm_and_the_stats_count_them(smsc):
    receipts = Receipts()
    session = SmppSession(smpp_config(smsc.port), on_receipt=receipts).start()
    long_text = "Your parcel is on its way. " * 8  # 216 GSM-7 characters: 2 parts
    try:
        assert session.wait_bound(10)
        outcomes = session.submit_many([message("+447911100001"), message("+447911100002", "Привет", "UCS-2"),
                                        message("+447911100003", long_text)])
        assert wait_until(lambda: len(receipts.got) == 4) and wait_until(lambda: len(smsc.logged()) == 4)
        assert wait_until(lambda: smsc.stats()["receipts_acked"] == 4)  # answered after on_receipt returned
        stats = smsc.stats()
    finally:
        session.close()
    assert all(isinstance(outcome, Submitted) for outcome in outcomes)
    lines = smsc.logged()
    assert [line["message_id"] for line in lines] == [i for o in outcomes for i in o.carrier_message_ids]
    assert [line["destination"] for line in lines] == ["447911100001", "447911100002", "447911100003", "447911100003"]
    assert [(line["data_coding"], line["esm_class"]) for line in lines] == [(0, 0), (8, 0), (0, 0x40), (0, 0x40)]
    assert lines[0]["short_message"] == b"Your code is 123456".hex() and lines[0]["source"] == "Acme"
    assert lines[1]["short_message"] == "Привет".encode("utf-16-be").hex()
    assert len({line["seq"] for line in lines}) == 4 and all(line["registered_delivery"] == 1 for line in lines)
    assert {key: stats[key] for key in ("submit_sm", "submit_sm_parts", "receipts_queued", "receipts_sent",
                                        "receipts_acked", "receipts_pending", "binds", "deliver_sm_resp",
                                        "sessions")} == {
        "submit_sm": 4, "submit_sm_parts": 2, "receipts_queued": 4, "receipts_sent": 4, "receipts_acked": 4,
        "receipts_pending": 0, "binds": 1, "deliver_sm_resp": 4, "sessions": 1}


ESME = """
import json, sys, threading, time
from messaging.carriers.config import CarrierConfig, OutboundMessage
from messaging.carriers.smpp import SmppSession

config = CarrierConfig(name="killed", kind="smpp", credentials={"password": sys.argv[2]},
                       settings={"host": "127.0.0.1", "port": int(sys.argv[1]), "system_id": sys.argv[3]})
# Receipts are stored nowhere and never answered: this process is killed -9 first.
lock = threading.Lock()  # the reader thread's lines and this one's, never interleaved


def say(**line):
    with lock:
        sys.stdout.write(json.dumps(line) + "\\n")
        sys.stdout.flush()


receipt = lambda r: say(receipt=r.carrier_message_id)
session = SmppSession(config, on_receipt=receipt, defer_receipt_answer=True).start()
assert session.wait_bound(10)
messages = [OutboundMessage(reference=f"msg_{i}", to=f"+44791110{i:04d}", sender="Acme", text="Hi", encoding="GSM-7")
            for i in range(5)]
for outcome in session.submit_many(messages):
    say(submitted=outcome.carrier_message_id)
time.sleep(120)
"""


def test_receipts_an_esme_was_killed_before_answering_are_sent_again_on_its_next_bind(smsc):
    esme = subprocess.Popen([sys.executable, "-c", ESME, str(smsc.port), PASSWORD, SYSTEM_ID], cwd=REPO,  # noqa: S603
                            stdout=subprocess.PIPE, text=True)
    seen: dict[str, list[str]] = {"submitted": [], "receipt": []}
    try:
        assert esme.stdout is not None
        for line in esme.stdout:
            [(kind, carrier_id)] = json.loads(line).items()
            seen[kind].append(carrier_id)
            if len(seen["submitted"]) == len(seen["receipt"]) == 5:
                break
        assert {key: smsc.stats()[key] for key in ("receipts_sent", "receipts_acked", "receipts_pending")} == {
            "receipts_sent": 5, "receipts_acked": 0, "receipts_pending": 5}
    finally:
        esme.kill()  # -9: its deliver_sm_resp never go out
        esme.wait(10)
        esme.stdout.close()
    assert sorted(seen["receipt"]) == sorted(seen["submitted"])
    assert wait_until(lambda: smsc.stats()["sessions"] == 0)

    receipts = Receipts()
    session = SmppSession(smpp_config(smsc.port), on_receipt=receipts, defer_receipt_answer=True).start()
    try:
        assert wait_until(lambda: len(receipts.got) == 5, 10)
        assert sorted(receipts.ids()) == sorted(seen["submitted"])
        assert smsc.stats()["receipts_acked"] == 0  # still queued: not one is answered yet
        for receipt in receipts.got[:2]:  # one at a time
            receipt.answer()
        assert wait_until(lambda: smsc.stats()["receipts_acked"] == 2)
        assert smsc.stats()["receipts_pending"] == 3
        receipts_answer(receipts.got[2:])  # the rest in one write: each by its own sequence number
        assert wait_until(lambda: smsc.stats()["receipts_acked"] == 5)
    finally:
        session.close()
    stats = smsc.stats()
    assert (stats["receipts_sent"], stats["receipts_pending"], stats["binds"]) == (10, 0, 2)


# --- the HTTP carrier --------------------------------------------------------------------------------------------


class ReceiptReceiver:
    """Our /carriers/{name}/receipts as the carrier sees it: records each POST; answers `statuses` in turn, then 204."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.posts: list[tuple[str, dict, bytes]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = ReceiptReceiver()
    yield server
    server.stop()


@pytest.fixture
def http_carrier(settings):
    settings.SECRET_KEY = "local-carriers-test-" + "k" * 40
    carrier = HttpCarrier(secret=demo.http_carrier_secret("receipt"), token=demo.http_carrier_secret("token"),
                          receipt_delay=0.05, undeliverable_suffix="999").start()
    yield carrier
    carrier.stop()


def seeded_http_config(carrier_port: int, public_base_url: str, *, token: str | None = None) -> CarrierConfig:
    """The local-http carrier exactly as seed_demo loads it, with its URL on `carrier_port`."""
    entry = next(c for c in demo.carriers_document()["carriers"] if c["name"] == demo.HTTP_CARRIER)
    credentials = {"token": entry["auth"].pop("token"), "receipt_secret": entry["receipt"].pop("secret")}
    entry["url"] = f"http://127.0.0.1:{carrier_port}/send"
    return CarrierConfig(name=entry.pop("name"), kind=entry.pop("kind"), settings=entry, public_base_url=public_base_url,
                         credentials={**credentials, **({"token": token} if token is not None else {})})


def test_the_http_carrier_answers_an_id_and_posts_a_receipt_our_generic_preset_verifies(http_carrier, receiver):
    config = seeded_http_config(http_carrier.port, receiver.url)
    connector = connector_from_config(config)
    good, bad = connector.submit_many([message("+447911123456"), message("+447911123999")])
    assert isinstance(good, Submitted) and good.carrier_message_id.startswith("lh-")
    assert wait_until(lambda: len(receiver.posts) == 2)
    found = {}
    for path, headers, body in receiver.posts:
        assert path == f"/carriers/{demo.HTTP_CARRIER}/receipts"
        assert headers["X-Signature"] == receipt_signature(demo.http_carrier_secret("receipt"), body)
        [receipt] = receipts_from_callback(config, method="POST", url=receiver.url + path, headers=headers, body=body,
                                           client_ip="127.0.0.1")
        found[receipt.carrier_message_id] = receipt.status
    assert found == {good.carrier_message_id: "delivered", bad.carrier_message_id: "undelivered"}
    _path, headers, body = receiver.posts[0]
    tampered = json.loads(body)  # the signature covers the body
    tampered["status"] = "FAILED" if tampered["status"] == "DELIVERED" else "DELIVERED"
    with pytest.raises(CallbackRefused):
        receipts_from_callback(config, method="POST", url=receiver.url, headers=headers, client_ip="127.0.0.1",
                               body=json.dumps(tampered).encode())
    assert http_carrier.stats() == {"send": 2, "send_refused": 0, "receipts_sent": 2, "receipts_retried": 0,
                                    "receipts_failed": 0, "receipts_pending": 0}


def test_the_http_carrier_refuses_a_wrong_token_and_a_dlr_off_loopback(http_carrier, receiver):
    [refused] = connector_from_config(seeded_http_config(http_carrier.port, receiver.url, token="wrong")).submit_many(
        [message()])
    assert isinstance(refused, RouteError) and refused.code == "carrier_auth_failed"
    request = urllib.request.Request(f"http://127.0.0.1:{http_carrier.port}/send", method="POST", headers={  # noqa: S310
        "Authorization": f"Bearer {demo.http_carrier_secret('token')}"},
        data=json.dumps({"to": "+447911123456", "text": "hi", "dlr": "http://10.0.0.1/receipts"}).encode())
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    assert answer.value.code == 400
    assert http_carrier.stats()["send_refused"] == 2 and not receiver.posts


def test_the_http_carrier_tries_a_refused_receipt_again(http_carrier):
    receiver = ReceiptReceiver(statuses=(500,))
    try:
        [sent] = connector_from_config(seeded_http_config(http_carrier.port, receiver.url)).submit_many([message()])
        assert isinstance(sent, Submitted)
        assert wait_until(lambda: len(receiver.posts) == 2, 5)  # 500, then 1 s later 204
    finally:
        receiver.stop()
    assert receiver.posts[0][2] == receiver.posts[1][2]
    assert http_carrier.stats()["receipts_retried"] == 1 and http_carrier.stats()["receipts_sent"] == 1


# --- manage.py local_carriers ------------------------------------------------------------------------------------


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"  # exited, not reaped yet
    except FileNotFoundError:
        return True


class LocalCarriers:
    """`manage.py local_carriers` as make run starts it, on free ports; its output lines."""

    def __init__(self, run_dir: Path) -> None:
        if shutil.which("node") is None:
            pytest.skip("node is not installed (the local SMSC runs on node-smpp)")
        self.smpp_port, self.http_port, self.run_dir = free_port(), free_port(), run_dir
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smsportal.test_settings", "READ_DOT_ENV": "false",
               "PYTHONUNBUFFERED": "1", "LOCAL_SMPP_PORT": str(self.smpp_port),
               "LOCAL_HTTP_CARRIER_PORT": str(self.http_port)}
        self.process = subprocess.Popen([sys.executable, "manage.py", "local_carriers", "--run-dir", str(run_dir)],  # noqa: S603
                                        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def said(self, start: str) -> int:
        return sum(1 for line in list(self.lines) if line.startswith(start))

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def http_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:  # noqa: S310 - loopback
        return json.load(answer)


def test_local_carriers_runs_both_restarts_a_stopped_one_on_sighup_and_stops_them_on_sigterm(tmp_path):
    running = LocalCarriers(tmp_path)
    try:
        assert wait_until(lambda: running.said("local carriers: SMPP on") and running.said("local carriers: HTTP on"),
                          20), running.lines
        smsc_pid, http_pid = running.pid("smpp"), running.pid("http")
        session = SmppSession(smpp_config(running.smpp_port, system_id=demo.SMPP_SYSTEM_ID,
                                          password=demo.SMPP_PASSWORD)).start()  # seed_demo's credentials
        try:
            assert session.wait_bound(10)
            assert http_stats(running.http_port)["send"] == 0

            os.kill(smsc_pid, signal.SIGTERM)  # the README's way to stop the SMPP carrier
            assert wait_until(lambda: running.said("local carriers: smpp stopped"), 10), running.lines
            assert wait_until(lambda: not session.is_bound)
            assert running.process.poll() is None and http_stats(running.http_port)["send"] == 0

            os.kill(running.process.pid, signal.SIGHUP)
            assert wait_until(lambda: running.said("local carriers: SMPP on") == 2, 10), running.lines
            assert running.pid("smpp") != smsc_pid and session.wait_bound(10)
        finally:
            session.close()
        children = [running.pid("smpp"), http_pid]
        os.kill(running.process.pid, signal.SIGTERM)
        assert running.process.wait(15) == 0
    finally:
        running.stop()
    assert running.lines[-1] == "local carriers: stopped"
    assert all(gone(pid) for pid in children) and not list(tmp_path.glob("*.pid"))


def test_the_carriers_die_with_a_killed_local_carriers(tmp_path):
    running = LocalCarriers(tmp_path)
    try:
        assert wait_until(lambda: running.said("local carriers: HTTP on"), 20), running.lines
        children = [running.pid("smpp"), running.pid("http")]
        running.process.kill()
        running.process.wait(10)
        assert wait_until(lambda: all(gone(pid) for pid in children), 10)
    finally:
        running.stop()


# --- seed_demo ---------------------------------------------------------------------------------------------------


def seed(settings) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_with_routes_loads_the_local_carriers_and_their_routes_once(db, settings):
    settings.LIVE_CARRIER = "routes"
    first = seed(settings)
    carriers = {c.name: c for c in Carrier.objects.all()}
    stamps = {name: carrier.updated_at for name, carrier in carriers.items()}
    again = seed(settings)

    assert set(carriers) == {"local-smpp", "local-http"}
    smpp, http = carriers["local-smpp"], carriers["local-http"]
    assert (smpp.kind, smpp.settings["host"], smpp.settings["port"], smpp.settings["system_id"]) == (
        "smpp", "127.0.0.1", settings.LOCAL_SMPP_PORT, "local")
    assert (smpp.settings["window"], smpp.settings["sessions"]) == (10, 1)
    assert credentials_decrypt(smpp.credentials_encrypted) == {"password": "localpw"}
    assert (http.kind, http.settings["preset"], http.settings["url"], http.settings["allow_private_network"]) == (
        "http", "generic", f"http://127.0.0.1:{settings.LOCAL_HTTP_CARRIER_PORT}/send", True)
    assert credentials_decrypt(http.credentials_encrypted) == {"token": demo.http_carrier_secret("token"),
                                                               "receipt_secret": demo.http_carrier_secret("receipt")}
    routes = {(r.carrier.name, r.prefix): (r.cost, r.currency) for r in Route.objects.select_related("carrier")}
    assert routes == {(name, prefix): (Decimal(cost), "EUR") for prefix in ("1", "44", "49", "33", "86", "91", "55")
                      for name, cost in (("local-smpp", "0.0050"), ("local-http", "0.0090"))}
    # a second run changes nothing: the same rows, no new cost history, one active key of each mode
    assert "16 changed" in first and "0 changed" in again
    assert {c.name: c.updated_at for c in Carrier.objects.all()} == stamps
    assert RouteCost.objects.count() == 14 and Route.objects.count() == 14
    tenant = Tenant.objects.get(slug="demo")
    active = selectors.api_key_list(tenant=tenant).filter(revoked_at=None)
    assert sorted(active.values_list("mode", flat=True)) == [ApiKey.Mode.LIVE, ApiKey.Mode.TEST]
    live_key = re.search(r"Live key: (\S+)", again).group(1)
    assert live_key.startswith("sk_live_") and live_key not in first


def test_seed_demo_with_the_simulator_makes_no_carriers_and_no_live_key(db, settings):
    assert settings.LIVE_CARRIER == "simulator"  # the test settings keep it, whatever make run's .env says
    output = seed(settings)
    assert not Carrier.objects.exists() and "Live key" not in output
    tenant = Tenant.objects.get(slug="demo")
    assert not selectors.api_key_list(tenant=tenant).filter(mode=ApiKey.Mode.LIVE).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the connector's threads need PostgreSQL")
def test_a_live_key_message_of_the_seeded_demo_goes_over_local_smpp_and_fails_over_to_local_http(settings, tmp_path):
    settings.SECRET_KEY = "local-carriers-test-" + "k" * 40
    settings.LIVE_CARRIER, settings.ROUTING_CACHE_SECONDS, settings.CONNECTOR_HEARTBEAT_SECONDS = "routes", 0, 0.2
    settings.CONNECTOR_JOURNAL_DIR = str(tmp_path / "journal")
    settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: the HTTP receipt is not the point
    server = Smsc(tmp_path, system_id=demo.SMPP_SYSTEM_ID, password=demo.SMPP_PASSWORD)
    http = HttpCarrier(secret=demo.http_carrier_secret("receipt"), token=demo.http_carrier_secret("token")).start()
    settings.LOCAL_SMPP_PORT, settings.LOCAL_HTTP_CARRIER_PORT = server.port, http.port
    routing_cache_clear()
    try:
        seed(settings)
        tenant = Tenant.objects.get(slug="demo")
        api_key = selectors.api_key_list(tenant=tenant).get(mode=ApiKey.Mode.LIVE, revoked_at=None)
        with Running("local-carriers-test"):
            assert wait_until(lambda: Carrier.objects.get(name="local-smpp").session_state == "bound", 10)
            routing_cache_clear()
            sent = message_send(tenant=tenant, api_key=api_key, to="+447911123456", sender="Acme", text="Hello")
            dispatch.messages_dispatch(message_ids=[sent.pk])
            assert wait_until(lambda: Message.unscoped.get(pk=sent.pk).status == Status.DELIVERED, 10)

            server.stop()  # the README's "stop the SMPP carrier"
            moved = message_send(tenant=tenant, api_key=api_key, to="+4915112345678", sender="Acme", text="Hallo")
            assert wait_until(lambda: _dispatched(moved), 20)
    finally:
        server.stop()
        http.stop()
        routing_cache_clear()
    assert _attempts(sent) == [("local-smpp", MessageAttempt.Outcome.DELIVERED)]
    assert [line["destination"] for line in server.logged()] == ["447911123456"]
    assert _attempts(moved) == [("local-smpp", MessageAttempt.Outcome.ROUTE_ERROR),
                                ("local-http", MessageAttempt.Outcome.SUBMITTED)]
    assert http.stats()["send"] == 1


def _dispatched(message: Message) -> bool:
    """Dispatch it while it is queued (a failed-over message comes back queued); True once it is sent."""
    status = Message.unscoped.get(pk=message.pk).status
    if status == Status.QUEUED:
        dispatch.messages_dispatch(message_ids=[message.pk])
    return status == Status.SENT


def _attempts(message: Message) -> list[tuple[str, str]]:
    return list(MessageAttempt.unscoped.filter(message=message).order_by("number").values_list("carrier", "outcome"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the connector's threads need PostgreSQL")
def test_the_seeds_example_payload_from_yourbrand_to_a_us_number_is_delivered_from_the_shared_us_number(
        settings, tmp_path):
    """Issue 12 (must show): the README's example payload, "YourBrand" to a US number, goes through the seeded
    demo's live key and local SMPP carrier from the platform's shared US number, and says so."""
    from rest_framework.test import APIClient

    settings.SECRET_KEY = "local-carriers-test-" + "k" * 40
    settings.LIVE_CARRIER, settings.ROUTING_CACHE_SECONDS, settings.CONNECTOR_HEARTBEAT_SECONDS = "routes", 0, 0.2
    settings.CONNECTOR_JOURNAL_DIR = str(tmp_path / "journal")
    settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{free_port()}"
    server = Smsc(tmp_path, system_id=demo.SMPP_SYSTEM_ID, password=demo.SMPP_PASSWORD)
    settings.LOCAL_SMPP_PORT = server.port
    routing_cache_clear()
    try:
        # given the seeded demo (its shared senders for the US and Canada, its live key)
        output = seed(settings)
        shared = re.search(r"Shared:\s+(\+1\d{10}), (\+1\d{10})", output).groups()
        live_key = re.search(r"Live key: (\S+)", output).group(1)
        with Running("local-carriers-test"):
            assert wait_until(lambda: Carrier.objects.get(name="local-smpp").session_state == "bound", 10)
            routing_cache_clear()
            # when the README's payload is posted with it
            response = APIClient().post("/v1/messages", {
                "to": "+14155550123", "from": "YourBrand", "text": "Your OTP is 123456",
                "callback_url": "https://yourapp.example/webhook", "message_type": "OTP", "region": "US"},
                format="json", HTTP_AUTHORIZATION=f"Bearer {live_key}")
            # then it is accepted, from the shared US number, with the substitution shown
            assert response.status_code == 202, response.json()
            body = response.json()
            assert body["from"] == shared[0]
            assert body["sender_substituted"] == {"requested": "YourBrand", "used": shared[0]}
            sent = Message.unscoped.get(public_id=body["id"])
            dispatch.messages_dispatch(message_ids=[sent.pk])
            # and delivered through the local SMPP carrier, from that number
            assert wait_until(lambda: Message.unscoped.get(pk=sent.pk).status == Status.DELIVERED, 10)
    finally:
        server.stop()
        routing_cache_clear()
    assert _attempts(sent) == [("local-smpp", MessageAttempt.Outcome.DELIVERED)]
    (line,) = server.logged()
    assert (line["destination"], line["source"]) == ("14155550123", shared[0].lstrip("+"))
    detail = APIClient().get(f"/v1/messages/{body['id']}", HTTP_AUTHORIZATION=f"Bearer {live_key}").json()
    assert detail["status"] == "delivered"
    assert detail["sender_substituted"] == {"requested": "YourBrand", "used": shared[0]}
