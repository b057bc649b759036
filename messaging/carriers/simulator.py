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
from django.db import IntegrityError, transaction
from django.db.models import F

from messaging.carriers.base import PermanentError, SubmitResult, TransientError
from messaging.models import SimulatorSubmission
from smsportal.countdowns import countdown_limit_setting

NAME = "simulator"
countdown_limit_setting("SIMULATOR_RECEIPT_DELAY")  # the receipt task's countdown


class SimulatorConnector:
    name = NAME

    def submit(self, message) -> SubmitResult:
        ending = message.to[-4:]
        if ending == "0002":
            raise PermanentError("carrier_rejected", "The carrier rejected the destination.", carrier_error_code="0x0B")
        if ending == "0003" and message.attempts <= 1:
            raise TransientError("carrier_throttled", "The carrier asked us to slow down.", carrier_error_code="0x58")
        carrier_message_id, _first = _accept(message)
        # A resubmission reports its status again, as the first submission did. The first receipt
        # may never have been scheduled (a worker SIGKILLed between logging the submission and
        # scheduling it), and the message, reclaimed and sent again, would stay `sent` forever.
        # Receipts are idempotent, so the duplicate of an already applied one changes nothing.
        stat = self.receipt_query(message)
        if stat is not None:
            from messaging.tasks import simulator_receipt_task

            simulator_receipt_task.apply_async(
                (carrier_message_id, stat, message.public_id), countdown=settings.SIMULATOR_RECEIPT_DELAY,
                queue=message.message_type,
            )
        return SubmitResult(carrier_message_id=carrier_message_id)

    def receipt_query(self, message) -> str | None:
        """The receipt status of a message it accepted (as a carrier's status query would answer it);
        None while there is none to give: 0004 never gets one."""
        ending = message.to[-4:]
        if ending == "0004":
            return None
        return "undelivered" if ending == "0001" else "delivered"


def _accept(message) -> tuple[str, bool]:
    """Log the submission; a resubmission of the same reference is counted, not sent again."""
    carrier_message_id = "sim_" + hashlib.sha256(message.public_id.encode()).hexdigest()[:24]
    try:
        with transaction.atomic():
            SimulatorSubmission.objects.create(reference=message.public_id, carrier_message_id=carrier_message_id,
                                               to=message.to)
        return carrier_message_id, True
    except IntegrityError:
        SimulatorSubmission.objects.filter(reference=message.public_id).update(submits=F("submits") + 1)
        return carrier_message_id, False
