"""End to end with a real Celery worker process on the real broker: delivery, and SIGKILL mid-dispatch.

The worker is `celery -A smsportal worker` started with subprocess.Popen against pytest-django's test
database (committed data: `transaction=True`) and the test settings' broker: Redis when
CELERY_BROKER_URL says so (CI), else the embedded filesystem broker's test folder. The API calls go
through the Django test client in this process; their dispatch tasks are published after commit, as
in production. Every started process is recorded and killed in the fixture's teardown.

Needs PostgreSQL: on SQLite pytest-django's test database lives in this process's memory, where a
worker process cannot see it (and SQLite in several processes is not what production runs). The
kill -9 test also needs Redis: the filesystem transport has no event loop, so the prefork pool's
children share one inqueue lock; a child SIGKILLed while holding it (an idle child waits for work
holding it) never releases it, and every replacement child blocks on it for good (seen with gdb:
`_multiprocessing_SemLock_acquire`). On Redis each child has its own pipes.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from numbers.tests.factories import shared_senders
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Sum

from accounts.tests.factories import TenantFactory, bearer, make_api_key
from messaging import pipeline
from messaging.lifecycle import FINAL, can_transition
from messaging.models import Message, MessageEvent, SimulatorSubmission, Status
from messaging.tests import history
from smsportal.tests.servers import child_database_url, http, procfile_server

BROKER = settings.CELERY_BROKER_URL
ON_REDIS = BROKER.startswith(("redis://", "rediss://"))
ON_FILESYSTEM = BROKER.startswith("filesystem")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="e2e needs PostgreSQL: the worker process cannot see pytest-django's in-memory "
                              "SQLite test database; set DATABASE_URL=postgres://..."),
    pytest.mark.skipif(not (ON_REDIS or ON_FILESYSTEM), reason=f"e2e knows Redis and filesystem brokers, not {BROKER}"),
]

REPO = Path(__file__).resolve().parents[2]
QUEUES = ("otp", "transactional", "marketing", "webhooks", "default")
STUCK_SECONDS = 2  # the sweeper's thresholds here (production: 120 s stuck, 60 s for an overdue receipt)
RECEIPT_OVERDUE_SECONDS = 2
# Redis gives what a killed worker had fetched but not acknowledged to another worker only after this
# (production: 1 h). Long on purpose: recovery must come from the sweeper, not from Redis' redelivery;
# and at least twice the longest countdown, which the worker checks at start (smsportal/countdowns.py).
VISIBILITY_SECONDS = 1200


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def _children(pid: int) -> list[int]:
    """Direct child processes of `pid` (the prefork pool), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool(self) -> list[int]:
        return _children(self.pid)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """Starts and stops real workers; every PID it started is recorded and killed at teardown."""

    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "smsportal.test_settings",
            "DATABASE_URL": child_database_url(),
            "CELERY_BROKER_URL": BROKER,
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_SECONDS),
            "SIMULATOR_RECEIPT_DELAY": "0.2",
            "MESSAGE_STUCK_SECONDS": str(STUCK_SECONDS),
            "PYTHONUNBUFFERED": "1",
        }

    def start_worker(self) -> Worker:
        log = self.tmp / f"worker-{len(self.workers) + 1}.log"
        command = [sys.executable, "-m", "celery", "-A", "smsportal", "worker", "-Q", ",".join(QUEUES),
                   "--concurrency", "2", "--pool", "prefork", "-l", "info", "-n", f"e2e-{uuid.uuid4().hex[:8]}@%h",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with log.open("wb") as out:
            # A session of its own: the worker and its pool children form one process group to kill.
            process = subprocess.Popen(command, cwd=REPO, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        worker = Worker(process, log)
        self.workers.append(worker)
        try:
            _wait_for(lambda: " ready." in log.read_text(errors="replace") or process.poll() is not None, 30,
                      "the worker to be ready", interval=0.1)
            assert process.poll() is None, f"the worker exited with {process.returncode}:\n{worker.tail()}"
            _wait_for(lambda: len(worker.pool()) == 2, 10, "the pool's two children")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.tail()}") from None
        return worker

    @staticmethod
    def kill_pool(worker: Worker) -> list[int]:
        """SIGKILL every pool child (they hold the running tasks); the worker starts new ones."""
        children = worker.pool()
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        return children

    @staticmethod
    def kill_worker(worker: Worker) -> None:
        """SIGKILL the worker and its pool at once (its process group)."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.process.wait(timeout=10)

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                try:
                    os.killpg(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                worker.process.wait(timeout=10)


def _purge_broker() -> None:
    """Empty our queues, so tasks left by earlier tests or runs cannot interfere (they would be no-ops)."""
    from smsportal.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            channel.queue_purge(queue)
        if ON_REDIS:
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)


def _unacked_count() -> int:
    from smsportal.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.client.hlen(conn.default_channel.unacked_key)


@pytest.fixture
def stack(tmp_path, settings):
    settings.MESSAGE_STUCK_SECONDS = STUCK_SECONDS  # the sweeper runs here, in the test process
    settings.MESSAGE_RECEIPT_OVERDUE_SECONDS = RECEIPT_OVERDUE_SECONDS
    _purge_broker()
    stack = Stack(tmp_path)
    yield stack
    stack.stop_all()
    _purge_broker()


@pytest.fixture
def sender(api):
    """POST /v1/messages as a fresh tenant's test key; returns the new message's public id."""
    tenant = TenantFactory(messages_per_second=1000)  # the tests post faster than the default 20 a second
    _, secret = make_api_key(tenant, name="e2e")

    def send(to: str, **fields) -> str:
        body = {"to": to, "from": "Acme", "text": "Your code is 123456", **fields}
        response = api.post("/v1/messages", body, format="json", **bearer(secret))
        assert response.status_code == 202, response.json()
        return response.json()["id"]

    send.tenant = tenant
    return send


def _statuses(public_id: str) -> list[str]:
    return history.statuses(Message.unscoped.get(public_id=public_id))


def _report(request, text: str) -> None:
    """Show a figure in the pytest output (and the JUnit report): these tests measure as well as check."""
    request.node.user_properties.append(("e2e", text))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n[e2e] {text}")


# --- (a) one message through the real worker -------------------------------------------------------


def test_a_message_posted_to_the_api_is_delivered_by_the_real_worker(stack, sender):
    # given a running worker
    worker = stack.start_worker()
    # when a message and one of each simulator outcome are posted
    endings = {"1234": "delivered", "0001": "undelivered", "0002": "failed", "0003": "delivered", "0004": "sent"}
    ids = {ending: sender(f"+1415555{ending}", message_type="otp") for ending in endings}

    # then within seconds each reaches its outcome (0004 stays sent: it never gets a receipt)
    def settled() -> bool:
        got = dict(Message.unscoped.filter(public_id__in=ids.values()).values_list("public_id", "status"))
        return all(got[ids[e]] in FINAL or (e == "0004" and got[ids[e]] == Status.SENT) for e in endings)

    try:
        _wait_for(settled, 15, "every message to settle", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.tail()}") from None
    got = dict(Message.unscoped.filter(public_id__in=ids.values()).values_list("public_id", "status"))
    assert {ending: got[ids[ending]] for ending in endings} == endings
    # and the plain one went queued -> sending -> sent -> delivered, one event per step, in order
    message = Message.unscoped.get(public_id=ids["1234"])
    events = [(event.sequence, event.status, event.source) for event in history.timeline(message)]
    assert events == [(1, "queued", "api"), (2, "sending", "worker"), (3, "sent", "worker"),
                      (4, "delivered", "carrier")]
    assert message.sent_at <= message.delivered_at and message.attempts == 1
    # and the retried one was tried twice, with the transient error on record
    assert _statuses(ids["0003"]) == ["queued", "sending", "queued", "sending", "sent", "delivered"]
    # and the carrier got one submission per accepted message, each once
    submissions = SimulatorSubmission.objects.filter(reference__in=ids.values())
    assert sorted(submissions.values_list("reference", "submits")) == sorted(
        (ids[e], 1) for e in endings if e != "0002")


# --- (b) SIGKILL mid-dispatch -------------------------------------------------------------------------


@pytest.mark.skipif(not ON_REDIS, reason=(
    "kill -9 runs on the Redis broker (CI): on the filesystem broker a pool child killed while holding the "
    "pool's shared inqueue lock leaves every replacement child blocked on it, and the worker runs nothing again"))
def test_killed_workers_lose_no_message_and_send_none_twice(stack, sender, request):
    # given 30 messages waiting in the broker
    ids = [sender(f"+1415555{5000 + n:04d}") for n in range(30)]
    assert Message.unscoped.filter(public_id__in=ids, status=Status.QUEUED).count() == 30
    submitted = SimulatorSubmission.objects.filter(reference__in=ids).count

    # when a worker starts on them, its pool children are SIGKILLed mid-dispatch (the worker
    # requeues their tasks: reject_on_worker_lost) and it forks new ones
    first = stack.start_worker()
    _wait_for(lambda: submitted() >= 5, 20, "the first submissions")
    killed = stack.kill_pool(first)
    assert killed, "the worker had no pool children to kill"
    kills = [f"pool children {killed} at {submitted()} submissions"]
    # and later the whole worker is SIGKILLed: what it had fetched (dispatch tasks, receipts waiting
    # on their countdown) stays in Redis' unacked hash for the 20-minute visibility timeout
    _wait_for(lambda: submitted() >= 15, 20, "more submissions after the first kill")
    kills.append(f"whole worker at {submitted()} submissions")
    stack.kill_worker(first)
    held_by_the_dead = _unacked_count()
    # and a new worker starts at once, with the sweeper running as beat would: it re-publishes lost
    # dispatch tasks, reclaims abandoned claims and asks the simulator again for overdue receipts
    second = stack.start_worker()
    sweeps: Counter[str] = Counter()

    def done() -> bool:
        sweeps.update(pipeline.messages_sweep())
        return Message.unscoped.filter(public_id__in=ids, status=Status.DELIVERED).count() == len(ids)

    try:
        _wait_for(done, 40, "every message to be delivered", interval=0.5)
    except AssertionError as exc:
        stuck = {m.public_id: [(e.status, e.source, e.detail, e.created_at.time().isoformat()) for e in MessageEvent.unscoped.filter(message=m).all()]
                 for m in Message.unscoped.filter(public_id__in=ids).exclude(status=Status.DELIVERED)}
        raise AssertionError(f"{exc}; not delivered: {stuck}\n--- first worker\n{first.tail()}\n"
                             f"--- second worker\n{second.tail()}") from None

    # then every message is delivered, with exactly one delivered event
    messages = Message.unscoped.filter(public_id__in=ids)
    assert Counter(messages.values_list("status", flat=True)) == {Status.DELIVERED: 30}
    delivered_events = Counter(MessageEvent.unscoped.filter(message__in=messages, status=Status.DELIVERED)
                               .values_list("message_id", flat=True))
    assert len(delivered_events) == 30 and set(delivered_events.values()) == {1}
    # and the carrier sent one SMS per message: one submission row each (resubmissions only counted)
    submissions = SimulatorSubmission.objects.filter(reference__in=ids)
    assert sorted(submissions.values_list("reference", flat=True)) == sorted(ids)
    # and each message's history is one event per sequence number, 1..n, every step allowed
    for message in messages:
        events = history.sequences(message)
        assert [s for s, _ in events] == list(range(1, len(events) + 1)) == list(range(1, message.sequence + 1))
        assert all(can_transition(a, b) for (_, a), (_, b) in zip(events, events[1:], strict=False)), events
    assert not MessageEvent.unscoped.filter(message__in=messages).values("message", "sequence").annotate(
        n=Count("id")).filter(n__gt=1).exists()
    # and the new worker acknowledged all it took: only what the dead one held is left, which Redis
    # redelivers after the visibility timeout as no-ops (duplicates of finished work)
    _wait_for(lambda: _unacked_count() <= held_by_the_dead, 10, "the new worker's tasks to be acknowledged")
    totals = submissions.aggregate(total=Sum("submits"), most=Max("submits"))
    reclaimed = MessageEvent.unscoped.filter(message__in=messages, source=MessageEvent.Source.SWEEPER).count()
    _report(request, f"kill -9: {'; '.join(kills)}; "
                     f"30/30 delivered once, 30 carrier rows, submits {totals['total']} "
                     f"(resubmitted {totals['total'] - 30}, max {totals['most']} per message), "
                     f"sweeper: {dict(sweeps)}, {reclaimed} sweeper events")


# --- (c) the broker down while messages are accepted --------------------------------------------------


@pytest.mark.skipif(not ON_REDIS, reason="the outage is a Redis broker URL on a loopback port nobody listens on")
def test_sends_while_the_broker_is_down_are_accepted_and_delivered_once_it_is_back(stack, tmp_path, settings,
                                                                                   request):
    # given the web server as shipped whose broker is a loopback port that refuses connections
    # (bound, never listening), and a tenant with a test key
    tenant = TenantFactory(messages_per_second=1000)
    _, secret = make_api_key(tenant, name="outage")
    auth = {"Authorization": f"Bearer {secret}"}
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{refused.getsockname()[1]}/9"
        with procfile_server(log=tmp_path / "web.log", env={"CELERY_BROKER_URL": down}) as web:
            # when ten messages are posted
            answers = [http("POST", web.url("/v1/messages"), headers=auth,
                            body={"to": f"+1415555{6100 + n:04d}", "from": "Acme", "text": "Your code is 123456"})
                       for n in range(10)]
            health, _, health_body = http("GET", web.url("/healthz"))
            log = web.log.read_text(errors="replace")
    # then every one is answered 202 with its id, as its message is committed
    assert [status for status, _, _ in answers] == [202] * 10, [body[:200] for _, _, body in answers]
    ids = [json.loads(body)["id"] for _, _, body in answers]
    # and the server logged, for each accept, that its dispatch task did not go out
    assert log.count("dispatch of 1 messages not published (OperationalError") == len(ids), log[-3000:]
    # and /healthz said the broker was down
    assert health == 503 and json.loads(health_body)["down"] == ["broker"]
    # and the messages wait, queued, with no dispatch task known for them
    messages = Message.unscoped.filter(public_id__in=ids)
    assert messages.filter(status=Status.QUEUED, enqueued_at=None).count() == 10

    # when the broker is back (this process's broker, the real Redis), a worker runs, and the
    # sweeper runs as beat does, with a pickup delay of one second
    settings.MESSAGE_DISPATCH_PICKUP_SECONDS = 1
    worker = stack.start_worker()
    started = time.monotonic()
    sweeps: Counter[str] = Counter()

    def delivered() -> bool:
        sweeps.update(pipeline.messages_sweep())
        return messages.filter(status=Status.DELIVERED).count() == 10

    try:
        _wait_for(delivered, 30, "the ten messages to be delivered", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; sweeps {dict(sweeps)}\n{worker.tail()}") from None
    # then the sweeper handed each over once, and each was delivered exactly once
    assert sweeps["handed_over"] == 10
    assert sorted(SimulatorSubmission.objects.filter(reference__in=ids).values_list("reference", "submits")) == sorted(
        (public_id, 1) for public_id in ids)
    assert Counter(MessageEvent.unscoped.filter(message__in=messages, status=Status.DELIVERED)
                   .values_list("message_id", flat=True)) == Counter({m.pk: 1 for m in messages})
    for public_id in ids:
        assert _statuses(public_id) == ["queued", "sending", "sent", "delivered"]
    _report(request, f"broker down: 10/10 answered 202; broker back: all delivered once "
                     f"{time.monotonic() - started:.1f} s after the worker started; sweeper: {dict(sweeps)}")


# --- (d) signed webhooks from the real worker to a loopback receiver ------------------------------------


class Receiver:
    """An HTTP server on loopback, in a thread, that records every POST (path, headers, body) and answers 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(headers, body) for got, headers, body in self.requests if got == path]

    def types(self, path: str) -> list[str]:
        return [json.loads(body)["type"] for _, body in self.received(path)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def test_the_real_worker_delivers_signed_webhooks_to_a_loopback_receiver(stack, sender, receiver):
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    from accounts.services import SYSTEM
    from smsportal.events import services as webhooks
    from smsportal.events.models import DeliveryStatus, WebhookDelivery

    # given an endpoint subscribed to sent and delivered, and the tenant's callback secret
    tenant = sender.tenant
    _, endpoint_secret = webhooks.webhook_endpoint_create(tenant=tenant, url=f"{receiver.url}/endpoint", actor=SYSTEM,
                                                          events=["message.sent", "message.delivered"])
    _, callback_secret = webhooks.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    worker = stack.start_worker()
    # when a message with a callback_url is posted and the real worker sends it
    message_id = sender("+14155551234", callback_url=f"{receiver.url}/callback")

    # then the endpoint gets message.sent and message.delivered, the callback URL every event too
    def arrived() -> bool:
        return ({"message.sent", "message.delivered"} <= set(receiver.types("/endpoint"))
                and {"message.queued", "message.sent", "message.delivered"} <= set(receiver.types("/callback")))

    try:
        _wait_for(arrived, 15, "the webhooks", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; got {[(p, json.loads(b)['type']) for p, _, b in receiver.requests]}\n"
                             f"{worker.tail()}") from None
    time.sleep(0.5)  # a duplicate would come right behind: give it the chance to show
    assert sorted(receiver.types("/endpoint")) == ["message.delivered", "message.sent"]
    assert sorted(receiver.types("/callback")) == ["message.delivered", "message.queued", "message.sent"]
    # and each verifies with the Standard Webhooks reference library, under its own secret only
    for path, secret, other in (("/endpoint", endpoint_secret, callback_secret),
                                ("/callback", callback_secret, endpoint_secret)):
        for headers, body in receiver.received(path):
            payload = Webhook(secret).verify(body, headers)
            assert payload["data"]["id"] == message_id and payload["data"]["status"] == payload["type"][8:]
            with pytest.raises(WebhookVerificationError):
                Webhook(other).verify(body, headers)
    # and the sequence numbers put the events in lifecycle order, the webhook-ids are all different
    sequences = {json.loads(body)["type"]: json.loads(body)["data"]["sequence"] for _, body in
                 receiver.received("/callback")}
    assert sequences == {"message.queued": 1, "message.sent": 3, "message.delivered": 4}
    ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
    assert len(ids) == len(set(ids)) == 5
    # and the outbox says delivered for all five
    deliveries = WebhookDelivery.unscoped.filter(subject=message_id)
    assert sorted(deliveries.values_list("status", flat=True)) == [DeliveryStatus.DELIVERED] * 5
