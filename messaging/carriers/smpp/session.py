"""One SMPP 3.4 ESME session on smpplib: bind and rebind, a window of submits, receipts and MO.

Threads and locks (smpplib is blocking):
- the session thread connects and binds, then reads PDUs until the link is down, then rebinds with
  capped exponential backoff and jitter. Every callback for something read off the wire (a
  submit's on_done, on_receipt, on_inbound, on_inbound_part) runs on it, synchronously, before the next
  PDU is read: a connector that records the carrier id inside on_done has it recorded before that id's
  receipt is handled. deliver_sm_resp goes out after on_receipt/on_inbound/on_inbound_part returned
  (at-least-once); one that raised is answered ESME_RX_T_APPN, and the SMSC delivers it again. A long
  MO's parts go to on_inbound_part when given (stored durably by the connector before each is answered),
  else to an in-memory Reassembler and the whole to on_inbound.
- the keeper thread sends enquire_link every enquire_link_seconds (no enquire_link_resp within the
  timeout: the link is dead, it is shut down and rebound), times out submits, hands on receipts
  parked too long and drops incomplete long MO. It sleeps on the stop event: no busy loop.
- callers' threads submit: they wait for a window slot (`_cond`), then build and send the PDU under
  `_send_lock`, which serialises smpplib's sequence numbers and the socket writes of all threads.
  Lock order: `_send_lock`, then `_cond`; neither is held while waiting for the other's holder to
  read, and no callback runs under either. `_callback_lock` makes callbacks never run at once.
"""
from __future__ import annotations

import logging
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from smpplib import client as smpp_client
from smpplib import consts, exceptions, smpp

from messaging.carriers.base import CarrierError, PermanentError, RouteError
from messaging.carriers.config import CarrierConfig, CarrierInbound, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.smpp.codec import ESM_CLASS_UDHI, Concatenation, Part, decode_text, message_parts, split_udh
from messaging.carriers.smpp.errors import THROTTLING, status_error
from messaging.carriers.smpp.inbound import MoPart, Reassembler, e164, mo_inbound
from messaging.carriers.smpp.ratelimit import Bucket, bucket_for, wait_for_token
from messaging.carriers.smpp.receipts import ReceiptParking, receipt_parse
from messaging.carriers.smpp.settings import SessionSettings

logger = logging.getLogger("messaging.carriers.smpp")

DISCONNECTED, CONNECTING, BOUND, BIND_REFUSED, CLOSED = "disconnected", "connecting", "bound", "bind_refused", "closed"
ESM_CLASS_RECEIPT = 0x04
ESME_RX_T_APPN = 0x64  # "ESME receiver temporary app error": the SMSC delivers the deliver_sm again later
ESME_RX_P_APPN = 0x65  # "ESME receiver permanent app error": a deliver_sm we cannot parse; do not resend
MAX_PDU_LENGTH = 64 * 1024
_BIND_REFUSALS = {consts.SMPP_ESME_RBINDFAIL, consts.SMPP_ESME_RINVPASWD, consts.SMPP_ESME_RINVSYSID}

DoneCallback = Callable[[OutboundMessage, "Submitted | CarrierError"], None]
ReceiptCallback = Callable[[CarrierReceipt], None]
InboundCallback = Callable[[CarrierInbound], None]
InboundPartCallback = Callable[[MoPart], None]


@dataclass(frozen=True)
class SmppReceipt(CarrierReceipt):
    """A receipt off an SMPP session that defers its answers (`defer_receipt_answer`): its deliver_sm is
    answered only when `answer()` is called, once the receipt is stored, so a crash before that makes the
    SMSC deliver it again. `answer()` does nothing when the link it came on is gone (the SMSC resends it)."""

    answer: Callable[[], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The deferred deliver_sm_resp of one receipt: `answer()` sends it alone, `receipts_answer` many at once."""

    session: SmppSession
    client: _Client
    sequence: int

    def __call__(self) -> None:
        self.session._answer_delivers(self.client, [self.sequence])


def receipts_answer(receipts: Iterable[CarrierReceipt]) -> None:
    """Send the deferred answers of these stored receipts, the answers of each link in one write (one system
    call, one release of the GIL, for a batch of receipts instead of one each)."""
    by_link: dict[tuple[int, int], list[_Answer]] = {}
    for receipt in receipts:
        answer = getattr(receipt, "answer", None)
        if isinstance(answer, _Answer):
            by_link.setdefault((id(answer.session), id(answer.client)), []).append(answer)
        elif answer is not None:
            answer()
    for answers in by_link.values():
        answers[0].session._answer_delivers(answers[0].client, [a.sequence for a in answers])


@dataclass(frozen=True)
class Unparsed:
    """A PDU smpplib could not parse: its header, so that it can still be answered."""

    command_id: int
    sequence: int
    command: str = "unparsed"


class _Client(smpp_client.Client):
    """smpplib's client, with a TLS socket that checks the host name, framing that survives a PDU its
    parser refuses (answered, not fatal), and a way to wake a blocked reader (abort)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # smpplib logs every PDU it sends as hex at DEBUG, the bind and its password among them: its logger
        # (`messaging.carriers.smpp.<carrier>.pdu`) stays at INFO whatever LOG_LEVEL says.
        self.logger.setLevel(logging.INFO)

    def _create_socket(self) -> socket.socket:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A window of small PDUs: without this, Nagle holds a submit_sm back until the SMSC's delayed ACK
        # (~40 ms on Linux), which caps a session at about window / 40 ms.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(self.timeout)
        return self._ssl_context.wrap_socket(raw, server_hostname=self.host) if self._ssl_context else raw

    _buffer = b""
    _position = 0

    def _recv_exact(self, exact_size: int) -> bytes:
        """Read from a buffer refilled 64 KiB at a time: one recv (and one release of the GIL) brings in many
        PDUs, where smpplib's own reads two small pieces per PDU."""
        while len(self._buffer) - self._position < exact_size:
            try:
                part = self._socket.recv(65536)
            except TimeoutError:
                raise
            except OSError as exc:
                raise exceptions.ConnectionError() from exc
            if not part:
                raise exceptions.ConnectionError()
            self._buffer, self._position = self._buffer[self._position:] + part, 0
        start = self._position
        self._position += exact_size
        return self._buffer[start:self._position]

    def read_pdu(self) -> Any:
        header = self._recv_exact(4)
        (length,) = struct.unpack(">L", header)
        if not 16 <= length <= MAX_PDU_LENGTH:
            raise exceptions.ConnectionError(f"PDU length {length}: the stream is not SMPP")  # framing lost
        raw = header + self._recv_exact(length - 4)
        try:
            pdu = smpp.parse_pdu(raw, client=self, allow_unknown_opt_params=True)
        except Exception:  # noqa: BLE001 - any parser failure: the frame is whole, the session goes on
            command_id, _status, sequence = struct.unpack(">LLL", raw[4:16])
            logger.warning("smpp: unparseable PDU 0x%08X seq %s (%s bytes)", command_id, sequence, length)
            return Unparsed(command_id, sequence)
        if not pdu.is_error() and pdu.command in consts.STATE_SETTERS:
            self.state = consts.STATE_SETTERS[pdu.command]
        return pdu

    def send_generated(self, command: str, data: bytes) -> None:
        """PDUs of `command` as smpplib generated them (`PDU.generate`), several in one write, where send_pdu
        writes each alone; refused as send_pdu refuses it in a state that does not allow the command."""
        if self.state not in consts.COMMAND_STATES[command]:
            raise exceptions.PDUError(f"{command} is not allowed in state {self.state}")
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise exceptions.ConnectionError() from exc

    def block(self) -> None:
        """No read timeout once bound: the keeper's enquire_link decides when the link is dead."""
        self._socket.settimeout(None)

    def abort(self) -> None:
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close_quietly(self) -> None:
        self.state = consts.SMPP_CLIENT_STATE_OPEN  # smpplib warns when closing a bound client; we unbound or lost it
        self.disconnect()


class _Outbound:
    """One message's parts in flight; its outcome once every part is answered (first error wins)."""

    def __init__(self, message: OutboundMessage, on_done: DoneCallback, parts: int) -> None:
        self.message = message
        self.on_done = on_done
        self._ids: list[str] = [""] * parts
        self._error: CarrierError | None = None
        self._remaining = parts
        self._lock = threading.Lock()

    def record(self, index: int, result: str | CarrierError) -> bool:
        """Record one part's result; True when it was the last one."""
        with self._lock:
            if isinstance(result, CarrierError):
                self._error = self._error or result
            else:
                self._ids[index] = result
            self._remaining -= 1
            return self._remaining == 0

    def outcome(self) -> Submitted | CarrierError:
        return self._error or Submitted(tuple(self._ids))

    @property
    def ids(self) -> list[str]:
        return [message_id for message_id in self._ids if message_id]


@dataclass
class _InFlight:
    outbound: _Outbound
    index: int
    deadline: float


class SmppSession:
    """A bound (and rebound) SMPP session to one carrier. `start()`, then `submit`/`submit_many`, `close()`.

    Throttling: on ESME_RTHROTTLED (0x58) or ESME_RMSGQFUL (0x14) the message is reported as
    TransientError("throttled" / "queue_full") -- it is NOT retried here, dispatch retries it -- and
    the session sends nothing for throttle_pause_seconds. A submit unanswered within
    submit_timeout_seconds: RouteError("submit_timeout"); the link lost with submits in flight:
    RouteError("connection_lost"); not bound: RouteError("not_bound"). Other statuses: errors.py.
    Callbacks must not call `submit` (they run on the reader thread, which the window waits for).
    """

    def __init__(self, config: CarrierConfig, *, on_receipt: ReceiptCallback | None = None,
                 on_inbound: InboundCallback | None = None, on_inbound_part: InboundPartCallback | None = None,
                 redis_url: str = "", defer_receipt_answer: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = config.name
        self._defer_answer = defer_receipt_answer
        self.settings = SessionSettings.from_config(config)
        self._password = config.credentials.get("password", "")
        self._on_receipt = on_receipt
        self._on_inbound = on_inbound
        self._on_inbound_part = on_inbound_part
        self._clock = clock
        self._bucket: Bucket | None = bucket_for(config.name, self.settings.max_mps, redis_url=redis_url)
        self._parking = ReceiptParking(hold_seconds=self.settings.receipt_hold_seconds, clock=clock)
        self._reassembler = Reassembler(timeout_seconds=self.settings.mo_reassembly_seconds, clock=clock)
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._callback_lock = threading.RLock()
        self._cond = threading.Condition()
        # Guarded by _cond:
        self._client: _Client | None = None
        self._state = DISCONNECTED
        self._last_error: CarrierError | None = None
        self._window: dict[int, _InFlight] = {}
        self._unfinished = 0  # messages with a part not answered yet (a long one's next part may not be sent)
        self._reserved = 0
        self._paused_until = 0.0
        self._next_enquire = 0.0
        self._enquire_deadline: float | None = None
        self._binds = 0
        self._link_failures = 0
        self._reference = random.randrange(256)
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SmppSession:
        for target, name in ((self._run, "reader"), (self._keep, "keeper")):
            thread = threading.Thread(target=target, name=f"smpp-{self.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self, *, timeout: float = 5.0) -> None:
        """Unbind (waiting up to `timeout` for unbind_resp), stop and join the threads. What is still in
        flight ends RouteError("closing"); parked receipts are handed on. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            client, bound = self._client, self._state == BOUND
            self._cond.notify_all()
        if client is not None and bound:
            try:
                self._send(client, "unbind")
            except (exceptions.ConnectionError, exceptions.PDUError, OSError):
                client.abort()
        deadline = self._clock() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._clock()))
            if thread.is_alive() and client is not None:
                client.abort()  # no unbind_resp in time: wake the reader
                thread.join(1.0)
        self._set_state(CLOSED, self._last_error)

    @property
    def state(self) -> str:
        with self._cond:
            return self._state

    @property
    def is_bound(self) -> bool:
        return self.state == BOUND

    @property
    def last_error(self) -> CarrierError | None:
        """Why the session is not bound (bind refused, connection failed), None while bound."""
        with self._cond:
            return self._last_error

    @property
    def binds(self) -> int:
        """How many times the session has bound (1 + rebinds)."""
        with self._cond:
            return self._binds

    @property
    def link_failures(self) -> int:
        """How many times a bind failed or a bound link dropped: each is a route-level failure of the carrier."""
        with self._cond:
            return self._link_failures

    def wait_bound(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._state == BOUND or self._stop.is_set(), timeout) and \
                self._state == BOUND

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, message: OutboundMessage, on_done: DoneCallback,
               before_send: Callable[[], None] | None = None) -> None:
        """Queue `message` and send its parts within the window; returns once every part is sent (it
        blocks while the window is full or the session is paused after a throttle). `on_done` gets
        exactly one outcome: Submitted (the id of each part, in order) or a CarrierError, from the
        reader thread (answers), the keeper (timeouts) or this thread (refused before sending).
        `before_send` is called once, on this thread, when the first part has its window slot and is about
        to go on the wire (the connector journals the message then)."""
        if self.settings.bind == "receiver":
            return self._call(on_done, message, RouteError("receive_only", "The session is bound as a receiver."))
        try:
            parts = message_parts(message.text, message.encoding, reference=self._next_reference())
        except ValueError as exc:
            return self._call(on_done, message, PermanentError("invalid_message", str(exc)))
        outbound = _Outbound(message, on_done, len(parts))
        with self._cond:
            self._unfinished += 1
        for index, part in enumerate(parts):
            try:
                error = self._send_part(outbound, index, part, before_send if index == 0 else None)
            except Exception:  # noqa: BLE001 - a fault of ours (a PDU smpplib cannot build, say): an outcome, not a dead feeder
                logger.exception("smpp %s: submitting part %d of %s failed", self.name, index + 1, message.reference)
                error = RouteError("submit_failed", "The message could not be submitted over SMPP.")
            if error is not None:
                for rest in range(index, len(parts)):
                    if outbound.record(rest, error):
                        self._finish(outbound)
                return None
        return None

    def submit_many(self, messages: Sequence[OutboundMessage]) -> list[Submitted | CarrierError]:
        """One outcome per message, in order, keeping the window full; returns when all are in
        (each is bounded by submit_timeout_seconds)."""
        outcomes: list[Submitted | CarrierError | None] = [None] * len(messages)
        done = threading.Condition()
        positions = {id(message): index for index, message in enumerate(messages)}

        def on_done(message: OutboundMessage, outcome: Submitted | CarrierError) -> None:
            with done:
                outcomes[positions[id(message)]] = outcome
                done.notify_all()

        for message in messages:
            self.submit(message, on_done)
        with done:
            done.wait_for(lambda: all(outcome is not None for outcome in outcomes))
        return [outcome for outcome in outcomes if outcome is not None]

    def _send_part(self, outbound: _Outbound, index: int, part: Part,
                   before_send: Callable[[], None] | None) -> CarrierError | None:
        client = self._acquire_slot()
        if client is None:
            return RouteError("not_bound", "The SMPP session is not bound.")
        if not wait_for_token(self._bucket, self._stop):
            self._release_slot()
            return RouteError("closing", "The SMPP session is closing.")
        if before_send is not None:
            before_send()
        fields = self._submit_fields(outbound.message, part)
        with self._send_lock:
            try:
                pdu = smpp.make_pdu("submit_sm", client=client, **fields)
            except Exception:
                self._release_slot()
                raise
            with self._cond:
                self._reserved -= 1
                self._window[pdu.sequence] = _InFlight(outbound, index,
                                                       self._clock() + self.settings.submit_timeout_seconds)
            try:
                client.send_pdu(pdu)
            except (exceptions.ConnectionError, exceptions.PDUError, OSError):
                with self._cond:
                    lost = self._window.pop(pdu.sequence, None)
                    self._cond.notify_all()
                return RouteError("connection_lost", "The SMPP link was lost.") if lost else None
            except Exception:  # not sent (smpplib could not encode it): out of the window; submit gives the outcome
                with self._cond:
                    self._window.pop(pdu.sequence, None)
                    self._cond.notify_all()
                raise
        return None

    def _acquire_slot(self) -> _Client | None:
        """Wait for room in the window (and the end of a throttle pause); the client to send on, or
        None when the session is not bound or closing. The slot is held as `_reserved` until sent."""
        with self._cond:
            while True:
                if self._stop.is_set() or self._state != BOUND or self._client is None:
                    return None
                now = self._clock()
                if now < self._paused_until:
                    self._cond.wait(self._paused_until - now)
                elif len(self._window) + self._reserved < self.settings.window:
                    self._reserved += 1
                    return self._client
                else:
                    self._cond.wait(1.0)

    def _release_slot(self) -> None:
        with self._cond:
            self._reserved -= 1
            self._cond.notify_all()

    def _submit_fields(self, message: OutboundMessage, part: Part) -> dict[str, Any]:
        ton, npi, source = self._source_address(message.sender)
        data_coding = self.settings.default_data_coding if part.data_coding == 0 else part.data_coding
        fields: dict[str, Any] = {
            "service_type": self.settings.service_type, "source_addr_ton": ton, "source_addr_npi": npi,
            "source_addr": source, "dest_addr_ton": 1, "dest_addr_npi": 1,
            "destination_addr": message.to.lstrip("+"), "esm_class": part.esm_class, "registered_delivery": 1,
            "data_coding": data_coding, "short_message": part.short_message,
        }
        if message.validity_seconds:
            fields["validity_period"] = relative_validity(message.validity_seconds)
        return fields

    def _source_address(self, sender: str) -> tuple[int, int, str]:
        """TON/NPI by sender kind: '+' and digits international, up to 8 digits a short code, else alphanumeric."""
        digits = sender.lstrip("+")
        kind = "alphanumeric"
        if digits.isdigit():
            kind = "international" if sender.startswith("+") or len(digits) > 8 else "short_code"
        ton, npi = self.settings.source_ton_npi[kind]
        return int(ton), int(npi), digits if kind != "alphanumeric" else sender

    def _next_reference(self) -> int:
        with self._cond:
            self._reference = (self._reference + 1) % 256
            return self._reference

    # -- the session thread: bind, read, rebind -----------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            client = self._bind()
            if client is None:
                attempt += 1
                self._count_link_failure()
                self._stop.wait(self._backoff(attempt))
                continue
            attempt = 1  # after a bound link drops, wait about the minimum before binding again
            self._read_until_down(client)
            self._link_down(client)
            if not self._stop.is_set():
                self._count_link_failure()
                self._stop.wait(self._backoff(attempt))

    def _count_link_failure(self) -> None:
        if not self._stop.is_set():
            with self._cond:
                self._link_failures += 1

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": between half and all of min * 2**(attempt-1)."""
        ceiling = min(self.settings.reconnect_max_seconds,
                      self.settings.reconnect_min_seconds * 2 ** min(attempt - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _bind(self) -> _Client | None:
        settings = self.settings
        self._set_state(CONNECTING, self.last_error)
        ssl_context = ssl.create_default_context() if settings.tls else None
        client = _Client(settings.host, settings.port, timeout=settings.connect_timeout_seconds,
                         ssl_context=ssl_context, allow_unknown_opt_params=True,
                         logger_name=f"messaging.carriers.smpp.{self.name}.pdu")
        try:
            client.connect()
            getattr(client, f"bind_{settings.bind}")(system_id=settings.system_id, password=self._password,
                                                     system_type=settings.system_type)
        except exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 else 0
            client.close_quietly()
            refused = status in _BIND_REFUSALS
            code = "bind_refused" if refused else "bind_failed"
            self._set_state(BIND_REFUSED if refused else DISCONNECTED,
                            RouteError(code, f"SMPP bind: {consts.DESCRIPTIONS.get(status, 'error')}",
                                       carrier_error_code=f"0x{status:08X}"))
            return None
        except (exceptions.ConnectionError, OSError) as exc:
            client.close_quietly()
            self._set_state(DISCONNECTED, RouteError("connect_failed", f"SMPP connect: {exc or 'failed'}"))
            return None
        client.block()
        with self._cond:
            self._client = client
            self._binds += 1
            self._next_enquire = self._clock() + settings.enquire_link_seconds
            self._enquire_deadline = None
        self._set_state(BOUND, None)
        return client

    def _read_until_down(self, client: _Client) -> None:
        while True:
            try:
                pdu = client.read_pdu()
            except (exceptions.ConnectionError, exceptions.PDUError, OSError):
                return
            try:
                if not self._handle(client, pdu):
                    return
            except (exceptions.ConnectionError, exceptions.PDUError, OSError):
                return

    def _handle(self, client: _Client, pdu: Any) -> bool:
        """Act on one PDU read; False when the link is to be dropped (unbind either way)."""
        command = pdu.command
        if command == "submit_sm_resp":
            self._on_submit_resp(pdu)
        elif command == "deliver_sm":
            self._on_deliver(client, pdu)
        elif command == "enquire_link":
            self._send(client, "enquire_link_resp", sequence=pdu.sequence)
        elif command == "enquire_link_resp":
            with self._cond:
                self._enquire_deadline = None
        elif command == "unbind":
            self._send(client, "unbind_resp", sequence=pdu.sequence)
            return False
        elif command == "unbind_resp":
            return False
        elif command == "generic_nack":
            self._on_submit_resp(pdu)
        elif isinstance(pdu, Unparsed):
            self._answer_unparsed(client, pdu)
        else:
            logger.info("smpp %s: %s ignored", self.name, command)
        return True

    def _answer_unparsed(self, client: _Client, pdu: Unparsed) -> None:
        if pdu.command_id == 0x00000005:  # deliver_sm: answered, as every deliver_sm is; not resent
            self._send(client, "deliver_sm_resp", sequence=pdu.sequence, status=ESME_RX_P_APPN)
        elif not pdu.command_id & 0x80000000:
            self._send(client, "generic_nack", sequence=pdu.sequence, status=consts.SMPP_ESME_RINVCMDID)

    def _link_down(self, client: _Client) -> None:
        with self._cond:
            self._client = None
            in_flight = list(self._window.values())
            self._window.clear()
            self._cond.notify_all()
        client.close_quietly()
        closing = self._stop.is_set()
        if not closing:
            self._set_state(DISCONNECTED, RouteError("connection_lost", "The SMPP link was lost."))
        error = RouteError("closing" if closing else "connection_lost", "The SMPP link went down with the submit in flight.")
        for flight in in_flight:
            self._part_done(flight, error)
        for receipt in self._parking.release_all():
            self._emit_receipt(receipt)

    def _set_state(self, state: str, error: CarrierError | None) -> None:
        with self._cond:
            changed = state != self._state
            self._state, self._last_error = state, error
            self._cond.notify_all()
        if changed:
            log = logger.warning if error is not None else logger.info
            log("smpp %s: %s%s", self.name, state, f" ({error.code}: {error.message})" if error else "")

    # -- answers, receipts and MO (on the session thread) ------------------------------------------

    def _on_submit_resp(self, pdu: Any) -> None:
        with self._cond:
            flight = self._window.pop(pdu.sequence, None)
            if flight is None:
                self._cond.notify_all()
            else:  # its slot is held until its outcome is handed on: the window bounds what is unanswered
                self._reserved += 1
                if pdu.status in THROTTLING:
                    self._paused_until = self._clock() + self.settings.throttle_pause_seconds
        if flight is None:
            logger.info("smpp %s: answer for seq %s that is no longer waited for", self.name, pdu.sequence)
            return
        try:
            self._answered(flight, pdu)
        finally:
            self._release_slot()

    def _answered(self, flight: _InFlight, pdu: Any) -> None:
        if pdu.command == "generic_nack":
            result: str | CarrierError = RouteError("generic_nack", "The SMSC refused the PDU (generic_nack).",
                                                    carrier_error_code=f"0x{pdu.status:08X}")
        elif pdu.status:
            result = status_error(pdu.status)
        else:
            result = (pdu.message_id or b"").decode("ascii", errors="replace").strip("\x00")
        self._part_done(flight, result)

    def _part_done(self, flight: _InFlight, result: str | CarrierError) -> None:
        if flight.outbound.record(flight.index, result):
            self._finish(flight.outbound)

    def _finish(self, outbound: _Outbound) -> None:
        """The message's outcome to its on_done, then its ids are known: receipts parked for them follow."""
        self._call(outbound.on_done, outbound.message, outbound.outcome())
        for message_id in outbound.ids:
            for receipt in self._parking.known(message_id):
                self._emit_receipt(receipt)
        with self._cond:
            self._unfinished -= 1

    def _on_deliver(self, client: _Client, pdu: Any) -> None:
        status = consts.SMPP_ESME_ROK
        deferred = False
        try:
            if (pdu.esm_class or 0) & ESM_CLASS_RECEIPT:
                deferred = self._on_receipt_pdu(client, pdu)
            else:
                self._on_mo_pdu(pdu)
        except Exception:
            logger.exception("smpp %s: deliver_sm handler failed; asking the SMSC to deliver it again", self.name)
            status = ESME_RX_T_APPN
        if not deferred:
            self._send(client, "deliver_sm_resp", sequence=pdu.sequence, status=status)

    def _on_receipt_pdu(self, client: _Client, pdu: Any) -> bool:
        """Hand on (or park) a receipt; True when its deliver_sm_resp is left to the receipt's `answer`."""
        payload = pdu.short_message or pdu.message_payload or b""
        receipt = receipt_parse(payload.decode("latin-1"), tlv_message_id=_text(pdu.receipted_message_id),
                                tlv_state=pdu.message_state)
        if receipt is None:
            logger.warning("smpp %s: receipt without a message id ignored", self.name)
            return False
        if self._defer_answer:
            receipt = SmppReceipt(**vars(receipt), answer=_Answer(self, client, pdu.sequence))
        with self._cond:
            busy = bool(self._unfinished)
        # Only while a message is unfinished can a receipt overtake its outcome: a long message's first part
        # can be answered, and its receipt come, before the next part is even sent.
        if not busy or self._parking.offer(receipt):
            self._emit_receipt(receipt)
        return self._defer_answer

    def _answer_delivers(self, client: _Client, sequences: list[int]) -> None:
        """deliver_sm_resp for stored receipts, on the link they came on, in one write; gone: the SMSC
        delivers them again."""
        with self._cond:
            if self._client is not client:
                return
        try:
            with self._send_lock:
                data = []
                for sequence in sequences:
                    pdu = smpp.make_pdu("deliver_sm_resp", client=client, status=consts.SMPP_ESME_ROK)
                    pdu.sequence = sequence  # make_pdu's own sequence= is ignored (see _send)
                    data.append(pdu.generate())
                client.send_generated("deliver_sm_resp", b"".join(data))
        except (exceptions.ConnectionError, exceptions.PDUError, OSError):
            client.abort()

    def _on_mo_pdu(self, pdu: Any) -> None:
        sender = e164(_text(pdu.source_addr), pdu.source_addr_ton or 0)
        to = e164(_text(pdu.destination_addr), pdu.dest_addr_ton or 0)
        payload, data_coding = pdu.short_message or pdu.message_payload or b"", pdu.data_coding or 0
        concatenation = None
        if (pdu.esm_class or 0) & ESM_CLASS_UDHI:
            concatenation, payload = split_udh(payload)
        elif pdu.sar_msg_ref_num is not None and pdu.sar_total_segments:
            concatenation = Concatenation(pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum or 0)
        long = concatenation is not None and concatenation.total > 1
        if long and not 1 <= concatenation.number <= concatenation.total:
            logger.warning("smpp %s: MO part %s of %s ignored", self.name, concatenation.number, concatenation.total)
            return
        if long and self._on_inbound_part is not None:
            # Parked durably by the callback before this part is answered; it completes the MO itself.
            with self._callback_lock:
                self._on_inbound_part(MoPart(sender=sender, to=to, concatenation=concatenation, payload=payload,
                                             data_coding=data_coding, reference=pdu.user_message_reference))
            return
        if long:
            text = self._reassembler.add(sender=sender, to=to, concatenation=concatenation, payload=payload,
                                         data_coding=data_coding)
            if text is None:
                return
        else:
            text = decode_text(payload, data_coding)
        inbound = mo_inbound(sender=sender, to=to, text=text, received_at=datetime.now(UTC),
                             message_id=_text(pdu.receipted_message_id), reference=pdu.user_message_reference,
                             concatenation=concatenation)
        if self._on_inbound is not None:
            with self._callback_lock:
                self._on_inbound(inbound)

    def _emit_receipt(self, receipt: CarrierReceipt) -> None:
        if self._on_receipt is not None:
            with self._callback_lock:
                self._on_receipt(receipt)

    def _call(self, on_done: DoneCallback, message: OutboundMessage, outcome: Submitted | CarrierError) -> None:
        try:
            with self._callback_lock:
                on_done(message, outcome)
        except Exception:
            logger.exception("smpp %s: on_done failed for %s", self.name, message.reference)

    def _send(self, client: _Client, command: str, *, sequence: int | None = None, **fields: Any) -> None:
        """Send one PDU; a response carries the `sequence` of the request it answers."""
        with self._send_lock:
            pdu = smpp.make_pdu(command, client=client, **fields)
            if sequence is not None:
                pdu.sequence = sequence  # make_pdu's own sequence= is ignored (smpplib sets only unset fields)
            client.send_pdu(pdu)

    # -- the keeper thread ---------------------------------------------------------------------------

    def _keep(self) -> None:
        tick = max(0.05, min(1.0, self.settings.enquire_link_seconds / 4, self.settings.submit_timeout_seconds / 4))
        while not self._stop.wait(tick):
            self._expire_submits()
            self._enquire_link()
            for receipt in self._parking.due():
                self._emit_receipt(receipt)
            self._reassembler.expire()

    def _expire_submits(self) -> None:
        now = self._clock()
        with self._cond:
            expired = [sequence for sequence, flight in self._window.items() if flight.deadline <= now]
            flights = [self._window.pop(sequence) for sequence in expired]
            if flights:
                self._cond.notify_all()
        for flight in flights:
            self._part_done(flight, RouteError("submit_timeout", "No submit_sm_resp in time."))

    def _enquire_link(self) -> None:
        now = self._clock()
        with self._cond:
            client = self._client if self._state == BOUND else None
            if client is None:
                return
            dead = self._enquire_deadline is not None and now >= self._enquire_deadline
            due = not dead and self._enquire_deadline is None and now >= self._next_enquire
            if due:
                self._next_enquire = now + self.settings.enquire_link_seconds
                self._enquire_deadline = now + self.settings.enquire_link_timeout()
        if dead:
            logger.warning("smpp %s: no enquire_link_resp in time; the link is dead", self.name)
            client.abort()
        elif due:
            try:
                self._send(client, "enquire_link")
            except (exceptions.ConnectionError, exceptions.PDUError, OSError):
                client.abort()


def relative_validity(seconds: int) -> str:
    """SMPP relative time YYMMDDhhmmss000R (days can exceed a month's; at most 99 of them)."""
    days, rest = divmod(min(int(seconds), 99 * 86400 + 86399), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00")
    return value
