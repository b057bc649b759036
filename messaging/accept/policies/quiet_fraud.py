"""Step 2 checks for quiet hours, fraud velocity and the OTP dedupe (issue 12, sections 7 and 8).

- `otp_dedupe_fraud_velocity`: one script for the whole request (compliance.fraud.velocity_plan), which rides in
  step 3's rate-limit call (no round trip of its own; this process's counters without Redis), counts every message against the fraud rules and sets the
  OTP dedupe markers. A message a block-mode rule fired for is 422 `fraud_suspected` with the rule's code as
  `reason` and the evidence as its message. An OTP whose text already went to the same number from the same
  tenant within OTP_DEDUPE_SECONDS is answered with that message (`deduplicated: true`), unless that message
  is still being accepted by another request: 409 `duplicate_in_flight` (retry: never sent twice).
- `quiet_hours`: a marketing message (and a transactional one, if the tenant asked) outside the recipient's
  window is scheduled for the start of the next one, `scheduled_reason: "quiet_hours"`. From memory only.

A quote (context.quote) peeks: it says what a send would meet and counts, marks and records nothing. So does a
send the plain path counted already and handed over (context.counted), which only finds an earlier marker.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings
from django.utils import timezone

from compliance import fraud, quiet_hours
from compliance.errors import DuplicateInFlight, FraudSuspected
from messaging.accept.registry import policy_check
from messaging.accept.steps import AcceptContext, Draft, Duplicate
from messaging.models import Message, MessageType
from messaging.services import PreparedMessage
from smsportal.api.ratelimit import key_prefix
from smsportal.ids import public_ids

_MEMO = "quiet_fraud"
QUIET_HOURS = "quiet_hours"


def _velocity_prepare(*, context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """One velocity call for the request. A send's rides in step 3's rate-limit call (context.riders): its
    outcome is applied to the drafts there, and only if the rate limits let the request through. A quote, or a
    request counted already, peeks now; its refusals wait in context.memo for the check."""
    drafts = list(drafts)
    messages = [draft.message for draft in drafts]
    outgoing = [fraud.Outgoing(to=m.to, country=m.country, message_type=m.message_type) for m in messages]
    dedupe = [i for i, m in enumerate(messages)
              if m.message_type == MessageType.OTP and settings.OTP_DEDUPE_SECONDS > 0 and not context.quote]
    candidates = public_ids("msg", len(dedupe)) if dedupe else []
    prefix = key_prefix()
    markers = [(fraud.dedupe_key(tenant_id=context.tenant.pk, to=messages[i].to, text=messages[i].analysis.text,
                                 prefix=prefix), candidate) for i, candidate in zip(dedupe, candidates, strict=True)]
    plan = fraud.velocity_plan(tenant_id=context.tenant.pk, api_key_id=context.api_key.pk if context.api_key else None,
                               messages=outgoing, markers=markers, peek=context.quote, counted=context.counted)
    rider = plan.rider
    if rider is None or context.quote or context.counted:
        refusals = _refusals(context, drafts, dedupe, markers, fraud.velocity_run(plan))
        context.memo[_MEMO] = {id(drafts[position].message): refusal for position, refusal in refusals.items()}
        return

    def settle(answer: list) -> None:
        for position, refusal in _refusals(context, drafts, dedupe, markers,
                                           fraud.velocity_settle(plan, answer)).items():
            if isinstance(refusal, Duplicate):
                drafts[position].duplicate = refusal.message
            else:
                drafts[position].error = refusal

    context.riders.append((rider, settle))


def _refusals(context: AcceptContext, drafts: list[Draft], dedupe: list[int], markers: list[tuple[str, str]],
              outcome: fraud.Outcome) -> dict[int, Exception]:
    """By draft position: a fraud block (FraudSuspected), or the OTP dedupe's answer (Duplicate of the earlier
    message, or DuplicateInFlight). A marker this request set gives its draft the id it was set with."""
    refusals: dict[int, Exception] = {}
    for position, entry in outcome.blocked.items():
        refusals[position] = FraudSuspected(f"Refused as suspected SMS pumping ({entry.rule.code}): "
                                            f"{entry.evidence}.", reason=entry.rule.code)
    earlier = _earlier(context, [found for found in outcome.markers if found])
    set_here: dict[str, str] = {}
    for (position, (key, candidate)), found in zip(zip(dedupe, markers, strict=True), outcome.markers, strict=False):
        if position in refusals:
            continue
        if not found:
            drafts[position].public_id, set_here[candidate] = candidate, key
        elif found in earlier:
            refusals[position] = Duplicate(earlier[found])
        else:  # being accepted by another request, or earlier in this batch: not stored yet
            refusals[position] = DuplicateInFlight(field="to")
    if set_here:
        context.unstored.append(lambda unstored: fraud.markers_release(
            [set_here[d.public_id] for d in unstored if d.public_id in set_here]))
    return refusals


def _earlier(context: AcceptContext, public_ids_found: list[str]) -> dict[str, Message]:
    """The stored messages the markers name: one query, only when a duplicate came."""
    if not public_ids_found:
        return {}
    rows = Message.objects.filter(tenant=context.tenant, public_id__in=public_ids_found).select_related("pool")
    return {row.public_id: row for row in rows}


@policy_check("otp_dedupe_fraud_velocity", codes=("fraud_suspected", "duplicate_in_flight"),
              prepare=_velocity_prepare)
def velocity(*, context: AcceptContext, message: PreparedMessage) -> None:
    refusal = context.memo.get(_MEMO, {}).get(id(message))
    if refusal is not None:
        raise refusal


@policy_check("quiet_hours", codes=())
def quiet(*, context: AcceptContext, message: PreparedMessage) -> PreparedMessage | None:
    """Defer a message outside the recipient's window to the next window's start (never refused).

    One `now` per request, and the answer memoized by (country, zones, type, moment): a batch pays the date
    arithmetic (some tens of microseconds) once per area, not once per message."""
    if not quiet_hours.applies(message.message_type, quiet_hours.tenant_window(context.tenant.pk)):
        return None  # OTP, and transactional unless the tenant asked: no time-zone lookup at all
    memo = context.memo.setdefault(QUIET_HOURS, {})
    moment = message.scheduled_at or memo.setdefault("now", timezone.now())
    key = (quiet_hours.number_place(message.to), message.timezone, message.message_type, moment)
    if key not in memo:
        memo[key] = quiet_hours.message_deferral(tenant_id=context.tenant.pk, to=message.to,
                                                 message_type=message.message_type, moment=moment,
                                                 timezone_name=message.timezone)
    later = memo[key]
    if later is None:
        return None
    return replace(message, scheduled_at=later, scheduled_reason=QUIET_HOURS)
