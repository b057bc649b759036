"""The SMPP connector process (`manage.py connector`): binds to every enabled SMPP carrier and sends what dispatch
hands it, keeping each session's window full.

Threads:
- per session: the SMPP client's reader and keeper (messaging/carriers/smpp/session.py), a claimer that
  claims pending attempts of its carrier (claims.attempts_claim, one statement) and keeps the next batch
  ready, and a feeder that submits them, journalling each (`S`) once it has its window slot, just before its
  first submit_sm. While the session is down for more than DOWN_GRACE_SECONDS the claimer still claims, and
  each submit fails at once with `not_bound`: a route error, so the message fails over instead of waiting
  for the pickup sweep;
- one writer, which stores in batches, in a pipeline of threads (`Writer`): the SMSC's answers (carrier ids,
  `sent`, errors and failover: dispatch.outcomes_record) on the writer thread, then, once a batch's answers
  are committed, its receipts (pipeline.receipts_apply) on one of the receipt threads, while the writer goes
  on with the next batch's answers. A receipt is answered (deliver_sm_resp) only after it is stored: a crash
  before that makes the SMSC send it again;
- the main thread: every CONNECTOR_HEARTBEAT_SECONDS the lease and each carrier's session state (routing
  drops a carrier that is down; dispatch hands attempts only to a carrier reported bound) and its failed binds
  and dropped links, counted as route failures on its routes' circuits (a carrier that stays down opens
  them, and they close on the first trial message after it is back), and every
  RELOAD_SECONDS the carriers: a new, changed (its `updated_at`) or disabled carrier is started, restarted or
  stopped, with no restart of the process.

Order: a receipt reaches the writer only after its submit's answer did (the session runs every callback on its
reader thread in PDU order, and parks a receipt that overtook its submit_sm_resp until the id is known), so
the carrier id is stored before its receipt is matched. MO messages go through the inbound service on the
reader thread itself, before their deliver_sm_resp; each part of a long one is stored before its own
(mo.py), so a restart between parts loses none.

Start-up: the journal of the run before (journal.py) settles this name's claims left `submitting`: answered ->
stored; sent, not answered -> unknown (failed, `submit_unknown`); never sent -> pending again.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from numbers.inbound import inbound_receive

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from messaging import pipeline
from messaging.carriers.base import CarrierError, RouteError, SubmitResult
from messaging.carriers.config import CarrierInbound, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.smpp.inbound import MoPart
from messaging.carriers.smpp.session import SmppSession, receipts_answer
from messaging.connector import claims, mo
from messaging.connector.journal import Journal
from messaging.routing.connectors import carrier_config, outbound_message
from messaging.routing.models import Carrier

logger = logging.getLogger("messaging.connector")

RELOAD_SECONDS = 10.0
DOWN_GRACE_SECONDS = 2.0
IDLE_POLL_SECONDS = (0.02, 0.5)  # a feeder's wait after an empty claim: from the first, doubling to the second
WRITER_BATCH = 2000
WRITER_WAIT_SECONDS = 0.02
RECEIPT_THREADS = 2
MAX_BACKLOG = 20_000  # feeders stop claiming while the writer has this many items waiting


class ConnectorLocked(RuntimeError):
    """Another connector process with the same name runs on this host (it holds the journal's lock)."""


@dataclass
class _Done:
    carrier: str
    claimed: claims.Claimed
    outcome: SubmitResult | CarrierError


@dataclass
class _Receipt:
    carrier: str
    receipt: CarrierReceipt


@dataclass
class Stats:
    submitted: int = 0
    refused: int = 0
    receipts: int = 0
    stored: int = 0


class Writer:
    """Stores what the sessions learnt, in order, in batches, in a pipeline of threads: the writer stores batch
    k's answers (carrier ids, `sent`) while RECEIPT_THREADS threads store the receipts of the batches before
    it. A receipt goes to a receipt thread only once the answers of its batch, and of every batch before, are
    committed, so it always finds its message's carrier id; and the writer never touches a message a receipt
    thread does (a message's receipt is in the batch of its answer or a later one). Two receipt batches may
    hold receipts of one message (its parts, or an intermediate and a final receipt): the batch transitions
    lock message rows in id order and move only as the status table allows, as for HTTP receipts arriving in
    parallel web requests. Each thread has its own connection, so the database works on several batches at
    once: a receipt is answered only once it is stored, so the SMSC's own limit of unanswered receipts makes
    the store's latency, not only its cost, bound the receipts a second (docs/performance.md)."""

    def __init__(self, journal: Journal, stats: Stats) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._receipts: queue.Queue = queue.Queue(maxsize=RECEIPT_THREADS)  # batches whose answers are stored
        self._receipts_queued = self._receipts_stored = 0
        self._count_lock = threading.Lock()
        self._journal = journal
        self._stats = stats
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connector-writer", daemon=True)
        self._receipt_threads = [threading.Thread(target=self._run_receipts, name=f"connector-receipts-{n}",
                                                  daemon=True) for n in range(RECEIPT_THREADS)]

    def start(self) -> None:
        self._thread.start()
        for thread in self._receipt_threads:
            thread.start()

    def put(self, item: _Done | _Receipt) -> None:
        self._queue.put(item)

    @property
    def backlog(self) -> int:
        with self._count_lock:
            return self._queue.qsize() + self._receipts_queued - self._receipts_stored

    def stop(self, timeout: float = 30.0) -> None:
        """Store what is waiting, then stop."""
        self._stop.set()
        self._thread.join(timeout)
        for thread in self._receipt_threads:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while not (self._stop.is_set() and self._queue.empty()):
                batch = self._take()
                if batch:
                    self._store(batch)
        finally:
            for _ in self._receipt_threads:
                self._receipts.put(None)
            connections.close_all()

    def _take(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while len(batch) < WRITER_BATCH:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list) -> None:
        done: dict[str, list[tuple[claims.Claimed, SubmitResult | CarrierError]]] = {}
        receipts: dict[str, list[CarrierReceipt]] = {}
        for item in batch:
            if isinstance(item, _Done):
                done.setdefault(item.carrier, []).append((item.claimed, item.outcome))
            else:
                receipts.setdefault(item.carrier, []).append(item.receipt)
        if done:
            _stored_until_done(lambda: [claims.outcomes_store(carrier=carrier, done=pairs)
                                        for carrier, pairs in done.items()], len(batch))
            self._journal.settled([c.attempt.pk for pairs in done.values() for c, _ in pairs])
            self._stats.stored += sum(len(pairs) for pairs in done.values())
        if receipts:
            count = sum(len(held) for held in receipts.values())
            with self._count_lock:
                self._receipts_queued += count
            self._receipts.put((receipts, count))

    def _run_receipts(self) -> None:
        try:
            while (item := self._receipts.get()) is not None:
                receipts, count = item
                _stored_until_done(lambda receipts=receipts: [pipeline.receipts_apply(carrier=carrier, receipts=[
                    pipeline.Receipt(carrier_message_id=r.carrier_message_id, status=r.status,
                                     carrier_error_code=r.carrier_error_code, detail=r.detail) for r in held])
                    for carrier, held in receipts.items()], count)
                receipts_answer(receipt for held in receipts.values() for receipt in held)
                with self._count_lock:
                    self._receipts_stored += count
                    self._stats.receipts += count
        finally:
            connections.close_all()


def _stored_until_done(store: Callable[[], object], count: int) -> None:
    """Run `store` until it succeeds: while the database is away the batch is kept (nothing
    of it is answered yet) and tried again every second."""
    while True:
        try:
            close_old_connections()
            store()
            return
        except Exception:
            logger.exception("connector: storing %d outcomes failed; retrying", count)
            connections.close_all()
            time.sleep(1.0)


class CarrierLink:
    """One SMPP carrier: its sessions and their feeders."""

    def __init__(self, carrier: Carrier, *, owner: str, journal: Journal, writer: Writer, stats: Stats,
                 redis_url: str) -> None:
        self.carrier_id, self.name, self.updated_at = carrier.pk, carrier.name, carrier.updated_at
        self._owner, self._journal, self._writer, self._stats = owner, journal, writer, stats
        config = carrier_config(carrier)
        self._stop = threading.Event()
        count = max(1, int(config.settings.get("sessions", 1) or 1))
        self.sessions = [SmppSession(config, on_receipt=self._on_receipt, on_inbound=self._on_inbound,
                                     on_inbound_part=self._on_inbound_part, redis_url=redis_url,
                                     defer_receipt_answer=True) for _ in range(count)]
        self._threads: list[threading.Thread] = []
        self._ready: list[queue.Queue] = []
        self._failures_seen = 0

    def start(self) -> CarrierLink:
        for index, session in enumerate(self.sessions):
            session.start()
            ready: queue.Queue = queue.Queue(maxsize=1)  # one batch ready while the feeder sends the one before
            self._ready.append(ready)
            for role, target in (("claimer", self._claim), ("feeder", self._feed)):
                thread = threading.Thread(target=target, args=(session, ready), daemon=True,
                                          name=f"connector-{self.name}-{index}-{role}")
                thread.start()
                self._threads.append(thread)
        logger.info("connector: carrier %s started with %d session(s)", self.name, len(self.sessions))
        return self

    @property
    def bound(self) -> bool:
        return any(session.is_bound for session in self.sessions)

    def link_failures_new(self) -> int:
        """Failed binds and dropped links of its sessions since the last call."""
        total = sum(session.link_failures for session in self.sessions)
        new, self._failures_seen = total - self._failures_seen, total
        return new

    def stop(self) -> None:
        """No new claims; what was claimed and not sent goes back; in-flight submits are answered or end
        with the session (unbind waits for the SMSC's answers)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10.0)
        for ready in self._ready:  # a batch the claimer handed over as the feeder stopped
            self._drain(ready)
        for session in self.sessions:
            session.close()

    # -- the feeder ---------------------------------------------------------------------------------------

    def _claim(self, session: SmppSession, ready: queue.Queue) -> None:
        """The claimer: keeps the next batch ready, so the feeder's window never waits on the database."""
        idle = IDLE_POLL_SECONDS[0]
        down_since: float | None = None
        try:
            while not self._stop.is_set():
                if self._writer.backlog > MAX_BACKLOG:
                    self._stop.wait(0.01)
                    continue
                if session.is_bound:
                    down_since = None
                else:
                    down_since = down_since or time.monotonic()
                    if time.monotonic() - down_since < DOWN_GRACE_SECONDS:
                        session.wait_bound(0.2)
                        continue
                limit = max(1, session.settings.window * 2)
                try:
                    close_old_connections()
                    claimed = claims.attempts_claim(carrier=self.name, owner=self._owner, limit=limit)
                except Exception:
                    logger.exception("connector %s: claim failed; retrying", self.name)
                    connections.close_all()
                    self._stop.wait(1.0)
                    continue
                if not claimed:
                    self._stop.wait(idle)
                    idle = min(IDLE_POLL_SECONDS[1], idle * 2)
                    continue
                idle = IDLE_POLL_SECONDS[0]
                while not self._stop.is_set():
                    try:
                        ready.put(claimed, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                else:
                    self._release(claimed)
        finally:
            connections.close_all()

    def _feed(self, session: SmppSession, ready: queue.Queue) -> None:
        """The feeder: submits the claimed batches in order; at a stop, what it did not send goes back."""
        try:
            while not self._stop.is_set():
                try:
                    claimed = ready.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._send(session, claimed)
        finally:
            self._drain(ready)
            connections.close_all()

    def _send(self, session: SmppSession, claimed: list[claims.Claimed]) -> None:
        for index, item in enumerate(claimed):
            if self._stop.is_set():
                self._release(claimed[index:])
                return
            attempt_id = item.attempt.pk
            try:
                outbound = outbound_message(item.message)
            except Exception:  # noqa: BLE001 - one message we cannot even build fails over; the feeder goes on
                logger.exception("connector %s: attempt %s could not be prepared", self.name, attempt_id)
                self._on_done(item)(None, RouteError("submit_failed", "The message could not be prepared for SMPP."))
                continue
            session.submit(outbound, self._on_done(item),
                           before_send=lambda attempt_id=attempt_id: self._journal.sending(attempt_id))

    def _drain(self, ready: queue.Queue) -> None:
        while True:
            try:
                self._release(ready.get_nowait())
            except queue.Empty:
                return

    def _release(self, claimed: list[claims.Claimed]) -> None:
        unsent = [c.attempt.pk for c in claimed]
        claims.attempts_release(unsent, owner=self._owner)
        self._journal.settled(unsent)

    def _on_done(self, item: claims.Claimed) -> Callable[[OutboundMessage, Submitted | CarrierError], None]:
        def done(_message: OutboundMessage, outcome: Submitted | CarrierError) -> None:
            if isinstance(outcome, Submitted):
                self._journal.answered(item.attempt.pk, outcome.carrier_message_ids)
                result: SubmitResult | CarrierError = SubmitResult.of(outcome.carrier_message_ids)
                self._stats.submitted += 1
            else:
                self._journal.refused(item.attempt.pk, type(outcome).__name__, outcome.code)
                result = outcome
                self._stats.refused += 1
            self._writer.put(_Done(self.name, item, result))
        return done

    # -- receipts and MO (on a session's reader thread) -------------------------------------------------------

    def _on_receipt(self, receipt: CarrierReceipt) -> None:
        self._writer.put(_Receipt(self.name, receipt))

    def _on_inbound(self, inbound: CarrierInbound) -> None:
        close_old_connections()
        inbound_receive(to=inbound.to, sender=inbound.sender, text=inbound.text, carrier=self.name,
                        carrier_message_id=inbound.carrier_message_id, dedupe_key=inbound.dedupe_key,
                        redelivery_seconds=self.sessions[0].settings.mo_redelivery_seconds,
                        received_at=inbound.received_at or timezone.now())

    def _on_inbound_part(self, part: MoPart) -> None:
        close_old_connections()
        mo.mo_part_receive(carrier=self.name, part=part, settings=self.sessions[0].settings)


class Connector:
    """The process: its carriers' links, the writer, the lease. `run(stop)` until `stop()` is true."""

    def __init__(self, *, name: str, carriers: list[str] | None = None, redis_url: str | None = None) -> None:
        self.name = name
        self.only = set(carriers or [])
        self.redis_url = settings.REDIS_URL if redis_url is None else redis_url
        self.journal = Journal(settings.CONNECTOR_JOURNAL_DIR, name)
        self.stats = Stats()
        self.writer = Writer(self.journal, self.stats)
        self.links: dict[int, CarrierLink] = {}
        self._lock_fd: int | None = None

    def run(self, stop: Callable[[], bool]) -> None:
        self._lock()
        try:
            recovered = self.recover()
            logger.info("connector %s: recovered the run before: %s", self.name, recovered)
            claims.lease_beat(name=self.name, host=socket.gethostname(), pid=os.getpid(), started=True)
            self.writer.start()
            next_beat = next_reload = 0.0
            while not stop():
                now = time.monotonic()
                if now >= next_reload:
                    self.reload()
                    next_reload = now + RELOAD_SECONDS
                if now >= next_beat:
                    self.heartbeat()
                    next_beat = now + settings.CONNECTOR_HEARTBEAT_SECONDS
                time.sleep(0.1)
        finally:
            self.shutdown()

    def recover(self) -> dict[str, int]:
        """Settle the claims of this name's run before, from its journal."""
        entries = self.journal.read()
        held = claims.claims_held(self.name)
        answered: dict[str, list[tuple[claims.Claimed, SubmitResult | CarrierError]]] = {}
        unknown, unsent = [], []
        for item in held:
            entry = entries.get(item.attempt.pk)
            if entry is None or not entry.sent:
                unsent.append(item.attempt.pk)
            elif entry.carrier_ids:
                answered.setdefault(item.attempt.carrier, []).append(
                    (item, SubmitResult.of(entry.carrier_ids)))
            elif entry.error is not None:
                answered.setdefault(item.attempt.carrier, []).append((item, claims.error_from_journal(*entry.error)))
            else:
                unknown.append(item.attempt.pk)
        for carrier, pairs in answered.items():
            claims.outcomes_store(carrier=carrier, done=pairs)
        counts = {"answered": sum(len(p) for p in answered.values()), "unknown": claims.unknown_settle(unknown),
                  "released": claims.attempts_release(unsent, owner=self.name)}
        self.journal.clear()
        return counts

    def reload(self) -> None:
        """Start, restart or stop links so that they match the enabled SMPP carriers."""
        try:
            close_old_connections()
            wanted = {c.pk: c for c in Carrier.objects.filter(kind=Carrier.Kind.SMPP, enabled=True)
                      if not self.only or c.name in self.only}
        except Exception:
            logger.exception("connector %s: reading carriers failed", self.name)
            connections.close_all()
            return
        for pk, link in list(self.links.items()):
            carrier = wanted.get(pk)
            if carrier is None or carrier.updated_at != link.updated_at:
                logger.info("connector: carrier %s %s", link.name, "changed" if carrier else "gone or disabled")
                link.stop()
                del self.links[pk]
                if carrier is None:  # no link reports it any more: down now, not bound until its lease is stale
                    try:
                        claims.session_state_report(carrier_id=pk, bound=False, stopping=True)
                    except Exception:
                        logger.exception("connector %s: reporting carrier %s down failed", self.name, link.name)
        for pk, carrier in wanted.items():
            if pk not in self.links:
                try:
                    self.links[pk] = CarrierLink(carrier, owner=self.name, journal=self.journal, writer=self.writer,
                                                 stats=self.stats, redis_url=self.redis_url).start()
                except (ValueError, KeyError, TypeError) as exc:  # saved in admin without what SMPP needs
                    logger.error("connector: carrier %s cannot be used: %s", carrier.name, exc)

    def heartbeat(self) -> None:
        try:
            close_old_connections()
            claims.lease_beat(name=self.name, host=socket.gethostname(), pid=os.getpid())
            for link in self.links.values():
                claims.session_state_report(carrier_id=link.carrier_id, bound=link.bound)
                failures = link.link_failures_new()
                if failures:
                    claims.link_failures_record(carrier_id=link.carrier_id, failures=failures)
        except Exception:
            logger.exception("connector %s: heartbeat failed", self.name)
            connections.close_all()

    def shutdown(self) -> None:
        for link in self.links.values():
            link.stop()
        for link in self.links.values():
            try:
                claims.session_state_report(carrier_id=link.carrier_id, bound=False, stopping=True)
            except Exception:
                logger.exception("connector %s: reporting carrier %s down failed", self.name, link.name)
        self.links.clear()
        self.writer.stop()
        stats = self.stats
        logger.info("connector %s: stopped after %d submitted, %d refused, %d outcomes and %d receipts stored",
                    self.name, stats.submitted, stats.refused, stats.stored, stats.receipts)
        try:
            claims.lease_end(self.name)
        except Exception:
            logger.exception("connector %s: ending the lease failed", self.name)
        self.journal.close()
        self._unlock()
        connections.close_all()

    def _lock(self) -> None:
        path = self.journal.directory / f"{self.name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConnectorLocked(f"a connector named {self.name!r} already runs on this host ({path})") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def default_name() -> str:
    return settings.CONNECTOR_NAME or socket.gethostname()

