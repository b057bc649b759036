"""Sending to an HTTP carrier: one request through smsportal.outbound, its failures as carrier errors, many at once.

Every preset (generic, Twilio, Telnyx) shares this: the request goes through the project's one outbound
HTTP module (`smsportal.outbound`: a deadline for the whole exchange, no redirects followed, at most
64 KiB of the answer read, the SSRF guard), kept-alive connections per thread, and a bounded thread pool
for `submit_many`. A preset only says how a message becomes a request and how an answer becomes a
`Submitted` or a carrier error.

Failures that produce no answer are the route's, never the destination's:

| what happened | error | code |
| --- | --- | --- |
| timed out (connect, send, or the answer) | RouteError | carrier_timeout |
| refused, reset, DNS, TLS, not HTTP | RouteError | carrier_unreachable |
| the configured URL is not allowed (SSRF guard) | RouteError | carrier_url_blocked |

A timeout after the request was sent may still have reached the carrier (none of the three presets
takes an idempotency key on send), so a resubmission on another route can send a second SMS.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from messaging.carriers.base import CarrierError, RouteError, TransientError, deadline_passed
from messaging.carriers.config import CarrierConfig, OutboundMessage, Submitted
from smsportal import outbound

logger = logging.getLogger("messaging.carriers.http")

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
MAX_DETAIL = 200  # characters of a carrier's error text kept in our error message
# submit_as_completed hands on what finished at most this often (and at once when the last one has): each
# hand-over is a transaction for dispatch, and a fast request's id waits for it at most this long.
GATHER_SECONDS = 0.2


class CarrierThrottled(TransientError):
    """The carrier answered 429: try again after `retry_after` seconds (None when it did not say)."""

    def __init__(self, code: str, message: str, *, carrier_error_code: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(code, message, carrier_error_code=carrier_error_code)
        self.retry_after = retry_after


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)  # may carry credentials (Authorization)
    body: bytes | None = field(default=None, repr=False)


class HttpConnector:
    """The shared part of the HTTP presets. Subclasses implement `request_for` and `outcome_of`.

    Settings (all optional): `timeout_seconds` (whole exchange, default 10), `concurrency` (requests in
    flight in `submit_many`, default 8, at most 64), `allow_private_network` (let the carrier URL be
    loopback or private: local development and tests; default false).
    """

    preset = ""

    def __init__(self, config: CarrierConfig) -> None:
        self.name = config.name
        self.config = config
        self.timeout = float(config.setting("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        self.concurrency = max(1, min(int(config.setting("concurrency", DEFAULT_CONCURRENCY)), MAX_CONCURRENCY))
        self.allow_private = bool(config.setting("allow_private_network", False))
        self._pool = outbound.ConnectionPool()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"  # never the credentials

    # --- what a preset provides ---------------------------------------------------------------------

    def request_for(self, message: OutboundMessage) -> HttpRequest:
        raise NotImplementedError

    def outcome_of(self, response: outbound.Response) -> Submitted:
        """The carrier's id(s) from a 2xx answer, or raise the CarrierError the answer means."""
        raise NotImplementedError

    # --- the connector interface --------------------------------------------------------------------

    def submit(self, message: OutboundMessage, *, deadline: float | None = None) -> Submitted:
        """Send one message. Raises PermanentError (the destination, sender or text is refused),
        RouteError (this route is broken: 5xx, no answer, our credentials refused) or TransientError
        (throttled: CarrierThrottled with `retry_after`). `deadline` (time.monotonic()) cuts the
        exchange short of `timeout_seconds`: a carrier_timeout then."""
        response = self.send(self.request_for(message), deadline=deadline)
        try:
            submitted = self.outcome_of(response)
        except CarrierError as exc:
            logger.info("carrier %s refused %s: HTTP %s, %s (%s)", self.name, message.reference,
                        response.status_code, exc.code, exc.carrier_error_code or "-")
            raise
        logger.info("carrier %s took %s as %s (HTTP %s, %d ms)", self.name, message.reference,
                    submitted.carrier_message_id, response.status_code, response.latency_ms)
        return submitted

    def submit_many(self, messages: list[OutboundMessage], *,
                    deadline: float | None = None) -> list[Submitted | CarrierError]:
        """Send many at once, up to `concurrency` requests in flight; one outcome per message, in order.
        A carrier error is that message's outcome; any other exception raises.

        `deadline` (time.monotonic()) bounds the whole batch: a request in flight is cut at it (carrier_timeout)
        and a message whose turn comes after it is not sent (DeadlinePassed). Without it, a carrier that hangs
        holds the batch for `timeout_seconds` per round of `concurrency` requests (250 messages, 8, 10 s:
        over 5 minutes), longer than the sweeper leaves a claimed message alone (MESSAGE_STUCK_SECONDS)."""
        outcomes: list[Submitted | CarrierError | None] = [None] * len(messages)
        for done in self.submit_as_completed(messages, deadline=deadline):
            for index, outcome in done:
                outcomes[index] = outcome
        return outcomes  # type: ignore[return-value]  # every index is filled once the generator ends

    def submit_as_completed(self, messages: list[OutboundMessage], *, deadline: float | None = None,
                            gather_seconds: float = GATHER_SECONDS) -> Iterator[list[tuple[int, Submitted | CarrierError]]]:
        """As submit_many, but yields the outcomes as the requests finish: (index in `messages`, outcome) of
        every request finished since the last yield, as soon as one has, gathering those that finish within
        `gather_seconds` of the last yield; the last set as soon as the last request is done. So a slow request
        does not hold back the ids of the fast ones. Any exception but a carrier error raises from the
        generator, as from submit_many (the requests already started still run to their end)."""
        futures = {self._pool_executor().submit(self._outcome_or_error, message, deadline): index
                   for index, message in enumerate(messages)}
        pending = set(futures)
        last = time.monotonic()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            left = last + gather_seconds - time.monotonic()
            if pending and left > 0:
                more, pending = wait(pending, timeout=left)
                done |= more
            yield sorted((futures[future], future.result()) for future in done)
            last = time.monotonic()

    def close(self) -> None:
        """Stop the worker threads (their kept-alive connections go with them)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _outcome_or_error(self, message: OutboundMessage, deadline: float | None = None) -> Submitted | CarrierError:
        if deadline is not None and time.monotonic() >= deadline:
            return deadline_passed()
        try:
            return self.submit(message, deadline=deadline)
        except CarrierError as exc:
            return exc

    def _pool_executor(self) -> ThreadPoolExecutor:
        # One long-lived pool per connector, so each worker thread keeps its connection alive
        # between batches (outbound.ConnectionPool is per thread).
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.concurrency,
                                                    thread_name_prefix=f"carrier-{self.name}")
            return self._executor

    # --- one exchange -------------------------------------------------------------------------------

    def send(self, request: HttpRequest, *, deadline: float | None = None) -> outbound.Response:
        """The carrier's answer (any status), or RouteError when there is none (by `deadline` too, when given)."""
        timeout = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline - time.monotonic()))
        try:
            return outbound.request(request.method, request.url, body=request.body, headers=request.headers,
                                    timeout=timeout, allow_private=self.allow_private, pool=self._pool)
        except outbound.Timeout as exc:
            raise self._no_answer("carrier_timeout", f"{self.name} did not answer within {timeout:.3g} s.") from exc
        except outbound.BlockedDestination as exc:
            raise self._no_answer("carrier_url_blocked", f"{self.name}'s URL is not allowed: {exc.message}") from exc
        except outbound.OutboundError as exc:
            raise self._no_answer("carrier_unreachable",
                                  f"{self.name} could not be reached ({exc.error_class}).") from exc

    def _no_answer(self, code: str, message: str) -> RouteError:
        logger.warning("carrier %s: %s", self.name, message)
        return RouteError(code, message)


# --- helpers the presets share ---------------------------------------------------------------------------


def json_of(response: outbound.Response) -> Any:
    """The answer's JSON, or None when it is not JSON (or was cut at the 64 KiB read cap)."""
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None


def detail(text: Any) -> str:
    """A carrier's error text, shortened, for our error message (never a credential: carriers do not echo them)."""
    return str(text or "")[:MAX_DETAIL]


def throttled(name: str, response: outbound.Response, *, carrier_error_code: str = "") -> CarrierThrottled:
    retry_after = response.retry_after()
    wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
    return CarrierThrottled("carrier_throttled", f"{name} asked us to slow down{wait}.",
                            carrier_error_code=carrier_error_code, retry_after=retry_after)


def server_error(name: str, response: outbound.Response, *, carrier_error_code: str = "") -> RouteError:
    return RouteError("carrier_server_error", f"{name} answered HTTP {response.status_code}.",
                      carrier_error_code=carrier_error_code)


def auth_refused(name: str, response: outbound.Response, *, carrier_error_code: str = "") -> RouteError:
    return RouteError("carrier_auth_failed", f"{name} refused our credentials (HTTP {response.status_code}).",
                      carrier_error_code=carrier_error_code)


def answer_invalid(name: str, response: outbound.Response, what: str) -> RouteError:
    # A 2xx without the id we need: the message may have been taken, but we cannot match its receipts.
    return RouteError("carrier_answer_invalid", f"{name} answered HTTP {response.status_code} without {what}.")
