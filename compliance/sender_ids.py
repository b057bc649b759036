"""Sender IDs (issue 12 section 3; docs/compliance.md "Sender IDs"): registration, an account manager's review,
and what the send pipeline asks (is this alphanumeric sender approved for that country; the tenant's fallback pool).

The send pipeline asks `sender_registered` for alphanumeric senders to countries that require registration, and
`fallback_pool_name` where the country does not support them: both answer from a per-process cache of the
tenant's rows (one query per tenant per COMPLIANCE_CACHE_SECONDS); a save in this process clears it
(compliance/signals.py), another process sees it within that time.
"""
from __future__ import annotations

import re
import threading
import time as clock
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.roles import Role
from accounts.services.audit import Actor, audit_record
from compliance.errors import (
    InvalidCountry,
    InvalidDocument,
    InvalidSenderId,
    SenderIdNotFound,
    SenderIdNotPending,
)
from compliance.models import SenderId, SenderIdDocument, SenderSettings
from smsportal.events import services as events
from smsportal.events.services import iso
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

SENDER_ID_REVIEWED = "sender_id.reviewed"
SENDER_ID_EVENT_TYPES = (SENDER_ID_REVIEWED,)
# The GSM-7 characters operators take in an alphanumeric sender, 3 to 11 of them, at least one letter (an ID of
# digits only would be read as a number).
ALPHANUMERIC_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 &'()*+,\-./:;<=>?!_#%@]{3,11}$")
MAX_SAMPLES, MAX_SAMPLE_CHARS, MAX_USE_CASE_CHARS = 5, 1000, 2000
# Documents by their first bytes, not their name or the client's Content-Type.
_DOCUMENT_TYPES = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
ALERTED_ROLES = (Role.OWNER, Role.ADMIN)
KNOWN_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)

# --- the check that a number is the tenant's: numbers is above compliance, so messaging registers it -----------

NumberHeld = Callable[..., bool]  # (tenant=, number=) -> whether the tenant may send from it
_number_held: list[NumberHeld] = []


def sender_number_check_register(check: NumberHeld) -> None:
    """Set the check that a number is the tenant's (registering again replaces it): messaging's sender policy
    (messaging/accept/policies/senders.py) registers numbers' sender_number_usable."""
    _number_held[:] = [check]


# --- validation --------------------------------------------------------------------------------------------


def sender_id_value_clean(*, tenant: Tenant, value: str) -> str:
    """The sender as registered: an alphanumeric ID as written, or a number in E.164 that the tenant holds.
    Raises InvalidSenderId (the same for another tenant's number as for a number nobody has)."""
    value = (value or "").strip() if isinstance(value, str) else ""
    if value.startswith("+") or value.isdigit():
        number = value if value.startswith("+") else f"+{value}"
        try:
            parsed = phonenumbers.parse(number)
        except phonenumbers.NumberParseException:
            parsed = None
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if parsed else ""
        if not parsed or not phonenumbers.is_valid_number(parsed) or not any(
                check(tenant=tenant, number=e164) for check in _number_held):
            raise InvalidSenderId(f"{value!r} is not a number you hold.", field="value")
        return e164
    if not ALPHANUMERIC_ID.match(value):
        raise InvalidSenderId(field="value")
    return value


def _countries_clean(countries: Iterable[str]) -> list[str]:
    cleaned = []
    for iso_code in countries or ():
        if not isinstance(iso_code, str) or iso_code.upper() not in KNOWN_REGIONS:
            raise InvalidCountry(f"{iso_code!r} is not an ISO 3166-1 alpha-2 country code.", field="countries")
        cleaned.append(iso_code.upper())
    if not cleaned:
        raise InvalidCountry("Name at least one country.", field="countries")
    return sorted(set(cleaned))


def _samples_clean(samples: Sequence[str]) -> list[str]:
    samples = list(samples or ())
    if len(samples) > MAX_SAMPLES or any(not isinstance(s, str) or not s.strip() or len(s) > MAX_SAMPLE_CHARS
                                         for s in samples):
        raise InvalidSenderId(f"Give at most {MAX_SAMPLES} sample messages of 1 to {MAX_SAMPLE_CHARS} characters.",
                              field="sample_messages")
    return [s.strip() for s in samples]


def _document_type(upload) -> str:
    """The document's type by its content; raises InvalidDocument for a file too large, empty or of another type."""
    size = getattr(upload, "size", None) or 0
    if size <= 0 or size > settings.SENDER_ID_DOCUMENT_MAX_BYTES:
        raise InvalidDocument(f"A document is 1 byte to {settings.SENDER_ID_DOCUMENT_MAX_BYTES} bytes; this one is "
                              f"{size}.", field="documents")
    upload.seek(0)
    head = upload.read(8)
    upload.seek(0)
    for magic, content_type in _DOCUMENT_TYPES:
        if head.startswith(magic):
            return content_type
    raise InvalidDocument("Only PDF, PNG and JPEG documents are taken.", field="documents")


# --- services ----------------------------------------------------------------------------------------------


@tenant_scoped
@transaction.atomic
def sender_id_register(*, tenant: Tenant, value: str, countries: Iterable[str], use_case: str,
                       sample_messages: Sequence[str] = (), documents: Sequence = (), actor: Actor) -> SenderId:
    """A new registration, pending an account manager's review, with its documents (uploaded files). Audited
    (sender_id.registered). Raises InvalidSenderId, InvalidCountry or InvalidDocument, with nothing stored."""
    value = sender_id_value_clean(tenant=tenant, value=value)
    countries = _countries_clean(countries)
    use_case = (use_case or "").strip() if isinstance(use_case, str) else ""
    if not use_case or len(use_case) > MAX_USE_CASE_CHARS:
        raise InvalidSenderId(f"Describe the use case in 1 to {MAX_USE_CASE_CHARS} characters.", field="use_case")
    samples = _samples_clean(sample_messages)
    types = [_document_type(upload) for upload in documents]  # all checked before anything is written
    sender_id = SenderId.objects.create(tenant=tenant, value=value, countries=countries, use_case=use_case,
                                        sample_messages=samples)
    for upload, content_type in zip(documents, types, strict=True):
        _document_store(sender_id=sender_id, upload=upload, content_type=content_type)
    audit_record(action="sender_id.registered", actor=actor, tenant=tenant, target=sender_id,
                 changes={"value": value, "countries": countries, "documents": len(types)})
    return sender_id


def _document_store(*, sender_id: SenderId, upload, content_type: str) -> SenderIdDocument:
    document = SenderIdDocument(tenant_id=sender_id.tenant_id, sender_id=sender_id, content_type=content_type,
                                size=upload.size, name=str(getattr(upload, "name", "") or "document")[-200:])
    document.file.save(document.public_id, upload, save=False)
    document.save()
    return document


@tenant_scoped
@transaction.atomic
def sender_id_document_add(*, tenant: Tenant, sender_id: SenderId, upload, actor: Actor) -> SenderIdDocument:
    """One more document for a registration still pending review (409 `not_pending` after it). Audited."""
    # Locked: a review that runs now sees the document or refuses it, never half of it.
    locked = SenderId.objects.select_for_update().get(pk=sender_id.pk)
    if locked.status != SenderId.Status.PENDING:
        raise SenderIdNotPending("Documents can be added only while the sender ID waits for its review.")
    document = _document_store(sender_id=locked, upload=upload, content_type=_document_type(upload))
    audit_record(action="sender_id.document_added", actor=actor, tenant=tenant, target=locked,
                 changes={"document": document.public_id, "name": document.name, "size": document.size})
    return document


@transaction.atomic
def sender_id_review(*, sender_id_pk: int, approve: bool, reason: str, actor: Actor,
                     expires_at: datetime | None = None, now: datetime | None = None) -> SenderId:
    """An account manager's decision on a pending registration, with a reason: approved (until `expires_at`,
    when given) or rejected. Audited (sender_id.approved / .rejected); the signed event sender_id.reviewed goes
    out with the decision (the outbox, in this transaction) and the tenant's owners and admins get an email
    after commit. Raises SenderIdNotPending for one already decided (two reviews at once: the row lock
    orders them and the second is refused)."""
    now = now or timezone.now()
    # unscoped: account managers review in admin, outside any tenant's context, one registration by its id
    sender_id = SenderId.unscoped.select_for_update().select_related("tenant").get(pk=sender_id_pk)
    if sender_id.status != SenderId.Status.PENDING:
        raise SenderIdNotPending(field="status")
    sender_id.status = SenderId.Status.APPROVED if approve else SenderId.Status.REJECTED
    sender_id.reason, sender_id.reviewed_by, sender_id.reviewed_at = reason, actor.user, now
    sender_id.expires_at = expires_at if approve else None
    sender_id.save(update_fields=["status", "reason", "reviewed_by", "reviewed_at", "expires_at", "updated_at"])
    audit_record(action=f"sender_id.{sender_id.status}", actor=actor, tenant=sender_id.tenant, target=sender_id,
                 changes={"value": sender_id.value, "countries": sender_id.countries, "reason": reason,
                          "expires_at": iso(expires_at) if expires_at and approve else None})
    data = sender_id_event_data(sender_id)
    events.event_emit(tenant_id=sender_id.tenant_id, event_type=SENDER_ID_REVIEWED, data=data, timestamp=now,
                      subject=f"{sender_id.public_id}:{sender_id.status}")
    _email_on_commit(sender_id=sender_id)
    transaction.on_commit(sender_ids_cache_clear)
    return sender_id


def sender_id_event_data(sender_id: SenderId) -> dict:
    """The payload of sender_id.reviewed: the registration as GET /v1/sender-ids/{id} shows its review."""
    return {"id": sender_id.public_id, "value": sender_id.value, "countries": list(sender_id.countries),
            "status": sender_id.status, "reason": sender_id.reason or None,
            "reviewed_at": iso(sender_id.reviewed_at) if sender_id.reviewed_at else None,
            "expires_at": iso(sender_id.expires_at) if sender_id.expires_at else None}


def _email_on_commit(*, sender_id: SenderId) -> None:
    tenant = sender_id.tenant
    recipients = sorted({m.user.email for m in accounts_selectors.membership_list(tenant=tenant)
                         if m.role in ALERTED_ROLES and m.user.email})
    if not recipients:
        return
    context = {"tenant": tenant, "sender_id": sender_id}
    transaction.on_commit(lambda: send_mail(
        subject=f"{tenant.name}: your sender ID {sender_id.value} was {sender_id.status}",
        message=render_to_string("emails/sender_id_reviewed.txt", context), from_email=None,
        recipient_list=recipients,
    ), robust=True)


@tenant_scoped
@transaction.atomic
def sender_settings_set(*, tenant: Tenant, fallback_pool: str, actor: Actor) -> SenderSettings:
    """The tenant's fallback pool for sender substitution ("" for none: the platform's shared senders). Audited."""
    row, _ = SenderSettings.objects.get_or_create(tenant=tenant)
    before = row.fallback_pool
    row.fallback_pool = (fallback_pool or "").strip()
    row.save(update_fields=["fallback_pool", "updated_at"])
    if before != row.fallback_pool:
        audit_record(action="sender_settings.changed", actor=actor, tenant=tenant, target=tenant,
                     changes={"fallback_pool": {"before": before, "after": row.fallback_pool}})
    transaction.on_commit(sender_ids_cache_clear)
    return row


# --- selectors ---------------------------------------------------------------------------------------------


def sender_id_status(sender_id: SenderId, *, now: datetime | None = None) -> str:
    """The status as callers see it: an approval past its `expires_at` is `expired`."""
    if (sender_id.status == SenderId.Status.APPROVED and sender_id.expires_at is not None
            and sender_id.expires_at <= (now or timezone.now())):
        return SenderId.Status.EXPIRED
    return sender_id.status


@tenant_scoped
def sender_id_list(*, tenant: Tenant, status: str | None = None):
    """The tenant's registrations, newest first, with their documents."""
    rows = SenderId.objects.prefetch_related("documents")
    now = timezone.now()
    if status == SenderId.Status.EXPIRED:
        return rows.filter(status=SenderId.Status.APPROVED, expires_at__lte=now) | rows.filter(
            status=SenderId.Status.EXPIRED)
    if status == SenderId.Status.APPROVED:
        return rows.filter(status=status).exclude(expires_at__lte=now)
    return rows.filter(status=status) if status else rows.all()


@tenant_scoped
def sender_id_get(*, tenant: Tenant, public_id: str) -> SenderId:
    """One registration of the tenant; 404 for another tenant's as for a missing one."""
    found = SenderId.objects.prefetch_related("documents").filter(public_id=public_id).first()
    if found is None:
        raise SenderIdNotFound(field="id")
    return found


# --- what the send pipeline asks, from memory ---------------------------------------------------------------


@dataclass(frozen=True)
class _Approved:
    countries: frozenset[str]
    expires_at: datetime | None


@dataclass(frozen=True)
class _TenantSenders:
    loaded: float
    approved: dict[str, tuple[_Approved, ...]]  # by the ID's value, case-folded
    fallback_pool: str


_cache: dict[int, _TenantSenders] = {}
_lock = threading.Lock()


def sender_ids_cache_clear() -> None:
    with _lock:
        _cache.clear()


def _tenant_senders(tenant_id: int) -> _TenantSenders:
    now = clock.monotonic()
    known = _cache.get(tenant_id)
    if known is None or now - known.loaded >= settings.COMPLIANCE_CACHE_SECONDS:
        approved: dict[str, list[_Approved]] = {}
        # the accept pipeline runs in the tenant's context: the scoped manager filters to it
        for value, countries, expires_at in SenderId.objects.filter(
                tenant_id=tenant_id, status=SenderId.Status.APPROVED).values_list("value", "countries", "expires_at"):
            approved.setdefault(value.casefold(), []).append(_Approved(frozenset(countries), expires_at))
        pool = (SenderSettings.objects.filter(tenant_id=tenant_id).values_list("fallback_pool", flat=True).first()
                or "")
        known = _TenantSenders(loaded=now, approved={k: tuple(v) for k, v in approved.items()}, fallback_pool=pool)
        with _lock:
            _cache[tenant_id] = known
    return known


def sender_registered(*, tenant_id: int, sender: str, country: str, now: datetime | None = None) -> bool:
    """Whether the tenant has an approved, unexpired registration of `sender` (any case) for `country`."""
    now = now or timezone.now()
    return any(country in approval.countries and (approval.expires_at is None or approval.expires_at > now)
               for approval in _tenant_senders(tenant_id).approved.get(sender.casefold(), ()))


def fallback_pool_name(*, tenant_id: int) -> str:
    """The name of the tenant's fallback pool for sender substitution, or ""."""
    return _tenant_senders(tenant_id).fallback_pool
