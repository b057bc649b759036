"""The carrier simulator: decides by the last four digits of the destination.

| ends in | outcome |
| --- | --- |
| 0001 | accepted, then an `undelivered` receipt |
| 0002 | permanent submit error: the message fails with `carrier_rejected` |
| 0003 | one transient submit error, then accepted and delivered |
| 0004 | accepted (`sent`), and no receipt ever (the sweeper ends it `undelivered`, `receipt_timeout`) |
| anything else | accepted, then `delivered` after SIMULATOR_RECEIPT_DELAY seconds (default 1) |

Its receipts go through the same service as any carrier's (pipeline.receipt_apply). Asked again for
a receipt that is overdue (`receipt_query`, from the sweeper), it answers the same status.
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from messaging.carriers.base import CarrierError, PermanentError, SubmitResult, TransientError
from messaging.models import SimulatorSubmission
from smsportal.countdowns import countdown_limit_setting

NAME = "simulator"
countdown_limit_setting("SIMULATOR_RECEIPT_DELAY")  # the receipt task's countdown


class SimulatorConnector:
    """The carrier simulator; under another `name` it stands for a local carrier of the routing table (a carrier
    of kind simulator: `make run`'s demo routes, the routing tests), whose receipts come back under that name."""

    def __init__(self, name: str = NAME) -> None:
        self.name = name

    def submit(self, message) -> SubmitResult:
        outcome = self.submit_many([message])[0]
        if isinstance(outcome, CarrierError):
            raise outcome
        return outcome

    def submit_many(self, messages: list) -> list[SubmitResult | CarrierError]:
        """Answer many submissions at once: one write to the submission log and one receipt task per
        message type (queue) for the lot, after SIMULATOR_RECEIPT_DELAY, as a carrier's receipts come
        in bursts. Outcomes are in the order of `messages`."""
        outcomes: list[SubmitResult | CarrierError] = []
        accepted = []
        for message in messages:
            ending = message.to[-4:]
            if ending == "0002":
                outcomes.append(PermanentError("carrier_rejected", "The carrier rejected the destination.",
                                               carrier_error_code="0x0B"))
            elif ending == "0003" and message.attempts <= 1:
                outcomes.append(TransientError("carrier_throttled", "The carrier asked us to slow down.",
                                               carrier_error_code="0x58"))
            else:
                result = SubmitResult(carrier_message_id=carrier_id_for(message.public_id))
                outcomes.append(result)
                accepted.append((message, result))
        _accept_many([(message.public_id, result.carrier_message_id, message.to) for message, result in accepted])
        self._receipts_schedule(accepted)
        return outcomes

    def _receipts_schedule(self, accepted: list) -> None:
        # A resubmission reports its status again, as the first submission did. The first receipt
        # may never have been scheduled (a worker SIGKILLed between logging the submission and
        # scheduling it), and the message, reclaimed and sent again, would stay `sent` forever.
        # Receipts are idempotent, so the duplicate of an already applied one changes nothing.
        from messaging.tasks import simulator_receipts_task

        by_queue: dict[str, list[tuple[str, str, str]]] = {}
        for message, result in accepted:
            stat = self.receipt_query(message)
            if stat is not None:
                by_queue.setdefault(message.message_type, []).append(
                    (result.carrier_message_id, stat, message.public_id))
        for queue, receipts in by_queue.items():
            simulator_receipts_task.apply_async((receipts,), kwargs={"carrier": self.name},
                                                countdown=settings.SIMULATOR_RECEIPT_DELAY, queue=queue)

    def receipt_query(self, message) -> str | None:
        """The receipt status of a message it accepted (as a carrier's status query would answer it);
        None while there is none to give: 0004 never gets one."""
        ending = message.to[-4:]
        if ending == "0004":
            return None
        return "undelivered" if ending == "0001" else "delivered"


def carrier_id_for(reference: str) -> str:
    return "sim_" + hashlib.sha256(reference.encode()).hexdigest()[:24]


def _accept_many(submissions: list[tuple[str, str, str]]) -> None:
    """Log the submissions (reference, carrier id, to); a resubmission of a reference is counted, not sent again."""
    if not submissions:
        return
    if connection.vendor == "postgresql":
        # One statement: a resubmission (the reference already logged) only counts.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO messaging_simulatorsubmission (reference, carrier_message_id, \"to\", submits, created_at) "
                "SELECT r, c, t, 1, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(r, c, t) "
                "ON CONFLICT (reference) DO UPDATE SET submits = messaging_simulatorsubmission.submits + 1",
                [timezone.now(), *map(list, zip(*submissions, strict=True))])
        return
    references = [reference for reference, _, _ in submissions]
    with transaction.atomic():
        seen = set(SimulatorSubmission.objects.filter(reference__in=references).values_list("reference", flat=True))
        SimulatorSubmission.objects.bulk_create(
            [SimulatorSubmission(reference=reference, carrier_message_id=carrier_id, to=to)
             for reference, carrier_id, to in submissions if reference not in seen], ignore_conflicts=True)
        if seen:
            SimulatorSubmission.objects.filter(reference__in=seen).update(submits=F("submits") + 1)
