"""Validating messages (step 1 of the accept pipeline, messaging/accept), cancelling them, and templates."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from numbers import pools
from numbers import selectors as numbers_selectors
from numbers.inventory import SHORT_CODE
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance import quiet_hours
from compliance.errors import InvalidTimezone
from messaging import encoding, errors, phone, templating
from messaging.lifecycle import message_transition
from messaging.models import Message, MessageEvent, MessageTemplate, MessageType, Status
from smsportal.errors import DomainError
from smsportal.events.services import callback_url_validate
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from numbers.models import NumberPool

    from accounts.models import Tenant

logger = logging.getLogger("smsportal.pipeline")

DEFAULT_VALIDITY = {
    MessageType.OTP: timedelta(minutes=10),
    MessageType.TRANSACTIONAL: timedelta(hours=4),
    MessageType.MARKETING: timedelta(hours=24),
}
MIN_VALIDITY = timedelta(seconds=60)
MAX_VALIDITY = timedelta(hours=72)
MAX_SCHEDULE_AHEAD = timedelta(days=30)
MAX_METADATA_BYTES = 4096
_MESSAGE_TYPES = frozenset(MessageType.values)  # `.values` builds a new list on every call
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 &'()*+,\-./:;<=>?!_#%@]{1,11}$")


@dataclass(frozen=True)
class PreparedMessage:
    """A validated, rendered and encoded message that is not stored yet (what a quote shows).

    With `"from": "pool:NAME"`, `sender` is the pool number picked and `pool` the pool."""

    to: str
    sender: str
    message_type: str
    template_ref: str
    analysis: encoding.EncodingResult
    scheduled_at: datetime | None
    validity: timedelta
    client_reference: str
    metadata: dict
    callback_url: str
    smart_encoding: bool
    pool: NumberPool | None = None
    # The caller's IANA time zone for the recipient (quiet hours), and why scheduled_at was set by a check.
    timezone: str = ""
    scheduled_reason: str = ""
    # The recipient's ISO country (phonenumbers' region, "" for none), from validation's per-prefix cache: the
    # policy checks (geo, content, fraud) read it here instead of parsing the number again.
    country: str = ""
    # Set by the sender policy where the destination takes no alphanumeric sender: {"requested", "used"}.
    sender_substituted: dict | None = None


def phone_number_normalize(value: str, *, region: str | None = None, field: str = "to") -> str:
    """E.164 for a number written in any common format; `region` is the country for national formats.

    The same answers as phonenumbers' parse and is_valid_number, from a per-prefix cache for numbers
    already in E.164 (messaging/phone.py)."""
    normalized = phone.phone_number_e164(value, region=region)
    if normalized is None:
        raise errors.InvalidPhoneNumber(f"{value!r} is not a valid phone number"
                                        + ("" if region or str(value).startswith("+") else
                                           "; use E.164 (+15551234567) or give `region`") + ".", field=field)
    return normalized


def sender_normalize(value: str) -> str:
    value = (value or "").strip()
    if value.startswith("+") or value.isdigit():
        return phone_number_normalize(value if value.startswith("+") else f"+{value}", field="from")
    if not ALPHANUMERIC_SENDER.match(value) or not encoding.is_gsm7(value):
        raise errors.InvalidSender(field="from")
    return value


def message_type_normalize(value: str | None) -> str:
    normalized = (value or MessageType.TRANSACTIONAL).strip().lower()
    if normalized not in _MESSAGE_TYPES:
        raise DomainError(f"message_type must be one of {', '.join(MessageType.values)}.", field="message_type",
                          code="invalid_message_type")
    return normalized


def _render_body(*, tenant: Tenant, text: str | None, template: str | None, variables: dict) -> tuple[str, str]:
    """(text to send, template reference to keep). With both, `text` is sent and `template` kept."""
    if text:
        return text, template or ""
    if not template:
        raise DomainError("Give `text`, or `template` with `variables`.", field="text", code="text_required")
    if templating.looks_like_inline(template):
        body = template
    else:
        stored = MessageTemplate.objects.filter(tenant=tenant, name=template).first()
        if stored is None:
            raise errors.TemplateNotFound(f"No template named {template!r}.", field="template")
        body = stored.body
    try:
        return templating.render(body, variables), template
    except templating.TemplateVariableMissing as exc:
        raise errors.TemplateVariableMissing(str(exc), field=f"variables.{exc.variable}") from exc
    except (templating.TemplateSyntaxError, templating.TemplateVariableInvalid) as exc:
        raise DomainError(str(exc), field="template" if isinstance(exc, templating.TemplateSyntaxError)
                          else "variables", code=exc.code) from exc


def _validity(message_type: str, seconds: int | None) -> timedelta:
    if seconds is None:
        return DEFAULT_VALIDITY[message_type]
    # Compared as seconds: timedelta() itself overflows (a 500) on a huge number.
    if not MIN_VALIDITY.total_seconds() <= seconds <= MAX_VALIDITY.total_seconds():
        raise DomainError("validity_period must be between 60 seconds and 72 hours.", field="validity_period",
                          code="invalid_validity_period")
    return timedelta(seconds=seconds)


def _schedule(scheduled_at: datetime | None, now: datetime) -> datetime | None:
    if scheduled_at is None or scheduled_at <= now:
        return None  # a time in the past means "now"
    if scheduled_at > now + MAX_SCHEDULE_AHEAD:
        raise DomainError("scheduled_at can be at most 30 days ahead.", field="scheduled_at",
                          code="invalid_scheduled_at")
    return scheduled_at


def _metadata(value: dict | None) -> dict:
    value = {} if value is None else value  # not `value or {}`: [], "" and false are not objects either
    if not isinstance(value, dict):
        raise DomainError("metadata must be a JSON object.", field="metadata", code="invalid_metadata")
    if value and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise DomainError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON.", field="metadata",
                          code="invalid_metadata")
    return value


@tenant_scoped
def message_prepare(
    *,
    tenant: Tenant,
    to: str,
    sender: str,
    text: str | None = None,
    template: str | None = None,
    variables: dict | None = None,
    message_type: str | None = None,
    region: str | None = None,
    scheduled_at: datetime | None = None,
    validity_period: int | None = None,
    client_reference: str = "",
    metadata: dict | None = None,
    smart_encoding: bool = True,
    callback_url: str = "",
    time_zone: str | None = None,
    pool_pick: bool = False,
) -> PreparedMessage:
    """Validate, render and encode a message: step 1 of the accept pipeline (messaging/accept), for send and quote.

    A `pool:NAME` sender is resolved to a pool number: with `pool_pick` (the accept transaction)
    the pick is recorded (round-robin cursor, sticky sender); without it nothing is written. Any
    other sender is kept as written: whether the tenant may send from it, like the segment limit,
    is a policy check of step 2 (messaging/accept/checks.py)."""
    message_type = message_type_normalize(message_type)
    body, template_ref = _render_body(tenant=tenant, text=text, template=template, variables=variables or {})
    analysis = encoding.analyze(body, smart_encoding=smart_encoding)
    to = phone_number_normalize(to, region=region)
    pool, sender = _sender_resolve(tenant=tenant, sender=sender, to=to, record=pool_pick)
    return PreparedMessage(
        to=to,
        sender=sender,
        pool=pool,
        message_type=message_type,
        template_ref=template_ref,
        analysis=analysis,
        scheduled_at=_schedule(scheduled_at, timezone.now()),
        validity=_validity(message_type, validity_period),
        client_reference=client_reference or "",
        metadata=_metadata(metadata),
        callback_url=_callback_url_checked(callback_url, settings.WEBHOOK_ALLOW_PRIVATE_TARGETS) if callback_url else "",
        smart_encoding=smart_encoding,
        timezone=_timezone(time_zone),
        country=phone.phone_number_region(to),
    )


def _timezone(name: str | None) -> str:
    """The caller's time zone for the recipient: an IANA name, checked (quiet hours read it)."""
    if not name:
        return ""
    if not quiet_hours.timezone_valid(name):
        raise InvalidTimezone(f"{name!r} is not an IANA time-zone name (such as America/New_York).", field="timezone")
    return name


@lru_cache(maxsize=1024)
def _callback_url_checked(url: str, allow_private: bool) -> str:
    """callback_url_validate, once per URL (and setting) in a process: without DNS it depends on
    nothing else, and a batch gives the same callback_url to every message. A refusal raises, and is
    not cached."""
    return callback_url_validate(url)


def _sender_resolve(*, tenant: Tenant, sender: str, to: str, record: bool) -> tuple[NumberPool | None, str]:
    """(pool, sender): a `pool:NAME` sender becomes the number the pool picks for `to` (always one
    the tenant holds); any other sender is left to the sender_allowed policy check (sender_check)."""
    pool_name = pools.pool_name_from_sender(sender)
    if pool_name is None:
        return None, (sender or "").strip()
    pool, number = pools.pool_pick(tenant=tenant, pool_name=pool_name, to=to, dry_run=not record)
    return pool, number.number


@tenant_scoped
def sender_check(*, tenant: Tenant, sender: str) -> str:
    """The sender as it is sent, when `tenant` may send from it (a `pool:NAME` sender is message_prepare's).

    An alphanumeric sender ID is only normalized (its registration is compliance's, later). A short code
    (its digits) or an E.164 number must be usable by the tenant (numbers.selectors.sender_number_usable),
    else 400 `sender_not_allowed` on `from`: the same answer for another tenant's number as for an unknown one."""
    value = (sender or "").strip()
    if SHORT_CODE.match(value) and numbers_selectors.sender_number_usable(tenant=tenant, number=value):
        return value
    try:
        normalized = sender_normalize(value)  # digits may also be a number written without its "+"
    except errors.InvalidPhoneNumber:
        if SHORT_CODE.match(value):
            raise _sender_refused(value) from None
        raise
    if normalized.startswith("+") and not numbers_selectors.sender_number_usable(tenant=tenant, number=normalized):
        raise _sender_refused(normalized)
    return normalized


def _sender_refused(number: str) -> errors.SenderNotAllowed:
    return errors.SenderNotAllowed(f"You cannot send from {number}. {errors.SenderNotAllowed.message}", field="from")


@dataclass(frozen=True)
class TextQuote:
    """A message body's length: `body` as written (template rendered), `analysis` as it would be sent."""

    body: str
    analysis: encoding.EncodingResult


@tenant_scoped
def message_quote_text(
    *,
    tenant: Tenant,
    text: str | None = None,
    template: str | None = None,
    variables: dict | None = None,
    smart_encoding: bool = True,
    sender: str = "",
) -> TextQuote:
    """Render and encode a body exactly as message_prepare does, without recipient or schedule.

    For a length check while the rest of a form is still being written. Raises the body's errors
    (text_required, template_not_found, template_variable_missing, ...) but not message_too_long:
    the caller compares the segment count with tenant.max_message_segments and warns. A `sender`,
    when given, is checked as the send checks it (sender_check); a `pool:NAME` sender is not, since
    the number it sends from depends on the recipient.
    """
    body, _template_ref = _render_body(tenant=tenant, text=text, template=template, variables=variables or {})
    if sender.strip() and pools.pool_name_from_sender(sender) is None:
        sender_check(tenant=tenant, sender=sender)
    return TextQuote(body=body, analysis=encoding.analyze(body, smart_encoding=smart_encoding))


def message_enqueue(*, message: Message, countdown: float | None = None) -> None:
    """Hand the message to dispatch after the current transaction commits (at once outside one).

    Never raises: the message row is the durable record, and the answer to a committed send is
    202 whatever the broker does. A publish that fails leaves `enqueued_at` empty, and the sweeper
    hands the message over within MESSAGE_DISPATCH_PICKUP_SECONDS plus one sweep (docs/send-pipeline.md)."""
    transaction.on_commit(lambda: message_dispatch_publish(message=message, countdown=countdown), robust=True)


def message_dispatch_publish(*, message: Message, countdown: float | None = None) -> bool:
    """Publish one dispatch task and stamp the row; False (logged) when the broker refused it."""
    from messaging.tasks import message_dispatch_task

    try:
        message_dispatch_task.apply_async((message.pk,), queue=message.message_type, countdown=countdown)
    except Exception as exc:  # kombu's OperationalError, or whatever else the broker client raises
        logger.warning("dispatch of %s not published (%s: %s); the sweeper hands it over", message.public_id,
                       exc.__class__.__name__, exc)
        return False
    # Only while the row is at the step this task was published for: a later step (a retry back to
    # queued) has a hand-over of its own, which this stamp must not hide from the sweeper.
    # unscoped: after commit (the request's context is gone) and from the sweeps, by the message's id
    Message.unscoped.filter(pk=message.pk, sequence=message.sequence).update(enqueued_at=timezone.now())
    return True


@tenant_scoped
def message_cancel(*, tenant: Tenant, message: Message) -> Message:
    if message.tenant_id != tenant.pk:
        raise errors.MessageNotFound()
    canceled = message_transition(message_id=message.pk, to=Status.CANCELED, source=MessageEvent.Source.API,
                                  detail="canceled by the customer",
                                  expected=frozenset({Status.SCHEDULED, Status.QUEUED}))
    if canceled is None:
        raise errors.MessageNotCancelable(
            f"The message is {Message.objects.get(pk=message.pk).status}; only a scheduled or queued message "
            "can be canceled.")
    return canceled


# --- Templates ---------------------------------------------------------------------------


def _template_clean(*, name: str | None, body: str | None) -> None:
    if name is not None and not re.fullmatch(templating.TEMPLATE_NAME_PATTERN, name):
        raise DomainError("A template name uses letters, digits, '_', '-' and '.' only (1-100 characters).",
                          field="name", code="invalid_template_name")
    if body is not None:
        try:
            templating.validate(body)
        except templating.TemplateSyntaxError as exc:
            raise errors.InvalidTemplate(str(exc), field="body") from exc


@tenant_scoped
def template_create(*, tenant: Tenant, name: str, body: str, message_type: str | None = None,
                    description: str = "") -> MessageTemplate:
    _template_clean(name=name, body=body)
    try:
        with transaction.atomic():
            return MessageTemplate.objects.create(tenant=tenant, name=name, body=body,
                                                  message_type=message_type_normalize(message_type),
                                                  description=description)
    except IntegrityError:
        raise errors.TemplateNameTaken(field="name") from None


@tenant_scoped
def template_update(*, tenant: Tenant, template: MessageTemplate, **changes) -> MessageTemplate:
    _template_clean(name=changes.get("name"), body=changes.get("body"))
    if "message_type" in changes:
        changes["message_type"] = message_type_normalize(changes["message_type"])
    for field, value in changes.items():
        setattr(template, field, value)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:
        raise errors.TemplateNameTaken(field="name") from None
    return template


@tenant_scoped
def template_delete(*, tenant: Tenant, template: MessageTemplate) -> None:
    MessageTemplate.objects.filter(pk=template.pk, tenant=tenant).delete()
