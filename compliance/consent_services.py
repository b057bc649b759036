"""Use cases that write the consent ledger and the suppressions: records from the API, the portal, imports and
keywords (STOP, STOPALL, START), manual suppressions, the tenant's consent settings (docs/compliance.md).

Every ledger record emits the signed event `contact.opted_in` or `contact.opted_out` (smsportal.events), in the
transaction that writes it, and clears the process's "no records" answer (compliance.consent)."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.services.audit import Actor, audit_record
from compliance import consent, hooks
from compliance.errors import ConsentInvalid, SuppressionNotFound
from compliance.models import ConsentRecord, ConsentScope, ConsentSettings, Suppression
from smsportal.events import services as events
from smsportal.events.services import iso
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

CONSENT_EVENT_TYPES = ("contact.opted_in", "contact.opted_out")

E164 = re.compile(r"\+[1-9][0-9]{6,14}")

# The words that opt a number out of every sender of the tenant (the others: the sender it was sent to).
TENANT_WIDE_OPT_OUTS = frozenset({"STOPALL"})


@dataclass(frozen=True)
class Proof:
    """What shows the person agreed (or withdrew): the words and their version, when, and where."""

    text: str = ""
    version: str = ""
    at: datetime | None = None
    ip: str | None = None
    user_agent: str = ""
    page_url: str = ""


@dataclass
class ImportResult:
    created: int = 0
    errors: list[str] = field(default_factory=list)


def phone_e164(value: str, *, field_name: str = "phone", strict: bool = True) -> str:
    """The number in E.164, or ConsentInvalid on `field_name`. Not `strict` (a keyword's sender, as the carrier
    gave it): any +digits of E.164's length is taken as it is, valid by phonenumbers' data or not, since a STOP
    from it must be honoured."""
    if not strict and E164.fullmatch(value or ""):
        return value
    try:
        parsed = phonenumbers.parse(str(value or "").strip(), None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise ConsentInvalid(f"{value!r} is not a valid phone number in E.164 (+14155550100).", field=field_name)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _target(scope: str, sender: str, pool_id: str) -> tuple[str, str]:
    if scope not in ConsentScope.values:
        raise ConsentInvalid("scope must be tenant, sender or pool.", field="scope")
    if scope == ConsentScope.SENDER:
        if not sender:
            raise ConsentInvalid("A sender-scoped record names its sender number.", field="sender")
        return phone_e164(sender, field_name="sender", strict=False), ""
    if scope == ConsentScope.POOL:
        if not pool_id:
            raise ConsentInvalid("A pool-scoped record names its pool's id (pool_…).", field="pool")
        return "", pool_id
    return "", ""


@tenant_scoped
@transaction.atomic
def consent_record(*, tenant: Tenant, phone: str, status: str, source: str, scope: str = ConsentScope.TENANT,
                   sender: str = "", pool_id: str = "", proof: Proof | None = None,
                   actor: Actor | None = None, strict: bool = True) -> ConsentRecord:
    """Append one record to the ledger and emit its `contact.opted_in` / `contact.opted_out` event.

    Validates the number (E.164; see phone_e164 for not `strict`), status, source and scope target; audited when
    an `actor` (API, portal) made it."""
    phone = phone_e164(phone, strict=strict)
    if status not in ConsentRecord.Status.values:
        raise ConsentInvalid("status must be opted_in or opted_out.", field="status")
    if source not in ConsentRecord.Source.values:
        raise ConsentInvalid("Not a known source.", field="source")
    sender, pool_id = _target(scope, sender, pool_id)
    proof = proof or Proof()
    record = ConsentRecord.objects.create(
        tenant=tenant, phone=phone, phone_hash=consent.phone_hash(phone), status=status, scope=scope, sender=sender,
        pool_id=pool_id, source=source, consent_text=proof.text, consent_version=proof.version,
        consented_at=proof.at or timezone.now(), ip=proof.ip or None, user_agent=proof.user_agent[:500],
        page_url=proof.page_url)
    consent.consent_cache_clear(tenant.pk)
    _emit(record)
    if status == ConsentRecord.Status.OPTED_OUT:
        hooks.opt_out_notify(tenant_id=tenant.pk, phone=phone, scope=scope, sender=sender, pool_id=pool_id)
    if actor is not None:
        audit_record(action=f"consent.{status}", actor=actor, tenant=tenant, target=record,
                     changes={"phone": phone, "scope": scope, "sender": sender, "pool": pool_id, "source": source})
    return record


def _emit(record: ConsentRecord) -> None:
    event_type = "contact.opted_in" if record.status == ConsentRecord.Status.OPTED_IN else "contact.opted_out"
    data = {"id": record.public_id, "phone": record.phone, "status": record.status, "scope": record.scope,
            "sender": record.sender or None, "pool": record.pool_id or None, "source": record.source,
            "consented_at": iso(record.consented_at), "created_at": iso(record.created_at)}
    events.event_emit(tenant_id=record.tenant_id, event_type=event_type, data=data, timestamp=record.created_at,
                      subject=record.public_id)


@tenant_scoped
def consent_settings_get(*, tenant: Tenant) -> ConsentSettings:
    """The tenant's settings, or the defaults (an unsaved row) when it has none."""
    return ConsentSettings.objects.filter(tenant=tenant).first() or ConsentSettings(tenant=tenant)


@tenant_scoped
@transaction.atomic
def consent_settings_set(*, tenant: Tenant, opt_out_scope: str, retention_days: int, actor: Actor) -> ConsentSettings:
    """Where a STOP applies (sender or tenant) and how long message bodies are kept; audited."""
    if opt_out_scope not in (ConsentScope.TENANT, ConsentScope.SENDER):
        raise ConsentInvalid("opt_out_scope must be tenant or sender.", field="opt_out_scope")
    if not 1 <= retention_days <= 3650:
        raise ConsentInvalid("retention_days must be between 1 and 3650.", field="retention_days")
    row, _ = ConsentSettings.objects.update_or_create(
        tenant=tenant, defaults={"opt_out_scope": opt_out_scope, "retention_days": retention_days})
    audit_record(action="consent_settings.updated", actor=actor, tenant=tenant, target=row,
                 changes={"opt_out_scope": opt_out_scope, "retention_days": retention_days})
    return row


# --- keywords (numbers/inbound.py through compliance.services.keyword_record) -----------------------------------


def keyword_consent(*, tenant: Tenant, number: str, sender: str, kind: str, word: str,
                    pool_ids: Iterable[str] = ()) -> list[ConsentRecord]:
    """The ledger records a keyword from `sender` to the tenant's `number` writes: an opt-out (STOP, …) or opt-in
    (START, UNSTOP, …) for that number and for each pool it is in; STOPALL, or a tenant whose opt-out scope is
    `tenant`, writes one tenant-wide instead. The keyword is the proof."""
    status = {"opt_out": ConsentRecord.Status.OPTED_OUT, "opt_in": ConsentRecord.Status.OPTED_IN}.get(kind)
    if status is None or not E164.fullmatch(sender or ""):
        return []  # HELP; or a sender no message can go to (a short code, a name): nothing to record
    word = " ".join(word.split()).upper()
    tenant_wide = word in TENANT_WIDE_OPT_OUTS or consent_settings_get(tenant=tenant).opt_out_scope == ConsentScope.TENANT
    proof = Proof(text=word, version="keyword")
    if tenant_wide:
        targets = [(ConsentScope.TENANT, "", "")]
    else:
        targets = [(ConsentScope.SENDER, number, ""), *((ConsentScope.POOL, "", pool) for pool in sorted(pool_ids))]
    return [consent_record(tenant=tenant, phone=sender, status=status, source=ConsentRecord.Source.KEYWORD,
                           scope=scope, sender=on, pool_id=pool, proof=proof, strict=False)
            for scope, on, pool in targets]


# --- suppressions ------------------------------------------------------------------------------------------------


@tenant_scoped
@transaction.atomic
def suppression_add(*, tenant: Tenant, phone: str, scope: str = ConsentScope.TENANT, sender: str = "",
                    pool_id: str = "", reason: str = "", source: str = Suppression.Source.API,
                    actor: Actor | None = None) -> Suppression:
    """Suppress a number in a scope; idempotent (the same number and scope again answers the existing entry)."""
    phone = phone_e164(phone)
    sender, pool_id = _target(scope, sender, pool_id)
    hashed = consent.phone_hash(phone)
    try:
        with transaction.atomic():
            row = Suppression.objects.create(tenant=tenant, phone=phone, phone_hash=hashed, scope=scope, sender=sender,
                                             pool_id=pool_id, source=source, reason=reason[:300])
    except IntegrityError:
        return Suppression.objects.get(tenant=tenant, phone_hash=hashed, scope=scope, sender=sender, pool_id=pool_id)
    consent.consent_cache_clear(tenant.pk)
    hooks.opt_out_notify(tenant_id=tenant.pk, phone=phone, scope=scope, sender=sender, pool_id=pool_id)
    if actor is not None:
        audit_record(action="suppression.added", actor=actor, tenant=tenant, target=row,
                     changes={"phone": phone, "scope": scope, "sender": sender, "pool": pool_id, "reason": reason})
    return row


@tenant_scoped
@transaction.atomic
def suppression_delete(*, tenant: Tenant, public_id: str, actor: Actor) -> None:
    """Lift a suppression; audited. Lifting an erasure's entry (only the hash kept) is a deliberate act of the
    tenant, the controller of that data: the erased number may then be messaged again."""
    row = Suppression.objects.filter(tenant=tenant, public_id=public_id).first()
    if row is None:
        raise SuppressionNotFound(field="id")
    row.delete()
    consent.consent_cache_clear(tenant.pk)
    audit_record(action="suppression.deleted", actor=actor, tenant=tenant, target=row,
                 changes={"phone": row.phone, "scope": row.scope, "sender": row.sender, "pool": row.pool_id})


# --- CSV (portal) ----------------------------------------------------------------------------------------------

CONSENT_CSV_COLUMNS = ("phone", "status", "scope", "sender", "pool", "source", "consent_text", "consent_version",
                       "consented_at", "ip", "user_agent", "page_url", "created_at", "id")
SUPPRESSION_CSV_COLUMNS = ("phone", "scope", "sender", "pool", "reason", "source", "created_at", "id")
IMPORT_MAX_ROWS = 10_000


def _csv_rows(data: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(data))
    if not reader.fieldnames or "phone" not in [name.strip() for name in reader.fieldnames]:
        raise ConsentInvalid("The file needs a header row with at least a `phone` column.", field="file")
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if len(rows) > IMPORT_MAX_ROWS:
        raise ConsentInvalid(f"At most {IMPORT_MAX_ROWS} rows a file.", field="file")
    return rows


def _csv_import(*, tenant: Tenant, data: str, actor: Actor, action: str, add_row) -> ImportResult:
    """Each CSV row through `add_row(row)`, all or nothing: any row's ConsentInvalid writes nothing and names its
    row (the header is row 1); a clean file is audited once as `action`. Run inside the caller's transaction."""
    result = ImportResult()
    for number, row in enumerate(_csv_rows(data), start=2):
        try:
            add_row(row)
            result.created += 1
        except ConsentInvalid as exc:
            result.errors.append(f"row {number}: {exc.message}")
    if result.errors:
        transaction.set_rollback(True)
        result.created = 0
        return result
    audit_record(action=action, actor=actor, tenant=tenant, changes={"rows": result.created})
    return result


@tenant_scoped
@transaction.atomic
def consents_import(*, tenant: Tenant, data: str, actor: Actor) -> ImportResult:
    """Ledger records from a CSV (columns of CONSENT_CSV_COLUMNS; `phone` and `status` required, source
    `import`): all or nothing, so a file with an error writes nothing and names its rows. Audited once."""

    def add(row: dict) -> None:
        at = parse_datetime(row["consented_at"]) if row.get("consented_at") else None
        if row.get("consented_at") and at is None:
            raise ConsentInvalid("consented_at is not an ISO 8601 date-time.", field="consented_at")
        with transaction.atomic():
            consent_record(tenant=tenant, phone=row.get("phone", ""), status=row.get("status", ""),
                           source=ConsentRecord.Source.IMPORT, scope=row.get("scope") or ConsentScope.TENANT,
                           sender=row.get("sender", ""), pool_id=row.get("pool", ""),
                           proof=Proof(text=row.get("consent_text", ""), version=row.get("consent_version", ""),
                                       at=at, ip=row.get("ip") or None, user_agent=row.get("user_agent", ""),
                                       page_url=row.get("page_url", "")))

    return _csv_import(tenant=tenant, data=data, actor=actor, action="consent.imported", add_row=add)


@tenant_scoped
@transaction.atomic
def suppressions_import(*, tenant: Tenant, data: str, actor: Actor) -> ImportResult:
    """Suppressions from a CSV (phone, and optionally scope, sender, pool, reason): all or nothing; audited once."""

    def add(row: dict) -> None:
        suppression_add(tenant=tenant, phone=row.get("phone", ""), scope=row.get("scope") or ConsentScope.TENANT,
                        sender=row.get("sender", ""), pool_id=row.get("pool", ""), reason=row.get("reason", ""),
                        source=Suppression.Source.IMPORT)

    return _csv_import(tenant=tenant, data=data, actor=actor, action="suppression.imported", add_row=add)


def consents_csv(records: Iterable[ConsentRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CONSENT_CSV_COLUMNS)
    for r in records:
        writer.writerow([_cell(v) for v in (
            r.phone, r.status, r.scope, r.sender, r.pool_id, r.source, r.consent_text, r.consent_version,
            r.consented_at.isoformat(), r.ip or "", r.user_agent, r.page_url, r.created_at.isoformat(), r.public_id)])
    return out.getvalue()


def suppressions_csv(rows: Iterable[Suppression]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SUPPRESSION_CSV_COLUMNS)
    for r in rows:
        writer.writerow([_cell(v) for v in (r.phone, r.scope, r.sender, r.pool_id, r.reason, r.source,
                                            r.created_at.isoformat(), r.public_id)])
    return out.getvalue()


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): a leading = + - @ is quoted with '."""
    value = str(value)
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") and not value[1:2].isdigit() else value
