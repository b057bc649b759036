"""Read queries for messaging, always tenant-scoped."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import phonenumbers
from django.db.models import Count, DecimalField, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from billing import rating
from billing import selectors as billing_selectors
from messaging.lifecycle import FINAL
from messaging.models import Message, MessageAttempt, MessageEvent, MessageTemplate, Status
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

# A search that reads like a phone number ("+1 (415) 555-0123") is matched by its digits.
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]{3,}")


@tenant_scoped
def message_list(*, tenant: Tenant) -> QuerySet[Message]:
    return Message.objects.filter(tenant=tenant).select_related("pool")


@tenant_scoped
def message_get(*, tenant: Tenant, public_id: str, with_events: bool = False) -> Message:
    queryset = message_list(tenant=tenant)
    if with_events:
        queryset = queryset.prefetch_related(
            Prefetch("events", queryset=MessageEvent.objects.order_by("sequence"))
        )
    message = queryset.filter(public_id=public_id).first()
    if message is None:
        raise Http404("not found")
    if with_events:
        message.timeline = message_timeline(message=message)
        message.routing = message_routing(message=message)
    return message


def message_routing(*, message: Message) -> dict | None:
    """What a customer sees of a routed message's routing: the chosen route's country and operator, its
    quality class, why it was chosen, and every attempt with its outcome and latency. Never the carrier or
    the cost (staff see those in admin). None for a message no route was chosen for (test mode, simulator)."""
    attempts = list(MessageAttempt.objects.filter(message=message).select_related("route").order_by("number"))
    if not attempts:
        return None
    chosen = attempts[-1]
    route = chosen.route
    return {
        "country": (route.country if route is not None and route.country else phone_region(message.to)) or None,
        "operator": (route.operator if route is not None else "") or None,
        "quality_class": chosen.quality_class,
        "reason": chosen.reason,
        "attempts": [{"number": a.number, "outcome": a.outcome, "error_code": a.error_code or None,
                      "started_at": a.started_at, "submit_ms": _ms(a.started_at, a.submitted_at or a.finished_at),
                      "receipt_ms": _ms(a.submitted_at, a.finished_at) if a.submitted_at else None}
                     for a in attempts],
    }


def _ms(start, end) -> int | None:
    return None if start is None or end is None else max(0, round((end - start).total_seconds() * 1000))


def phone_region(number: str) -> str:
    parsed = phonenumbers.parse(number, None)
    return phonenumbers.region_code_for_number(parsed) or ""


def message_timeline(*, message: Message) -> list[MessageEvent]:
    """The message's events in order (prefetched by message_get), starting with `accepted`.

    An accepted message has no stored first event: its row is it (messaging/accept/store.py), so
    `accepted` is made here from the row: sequence 1, the status it was accepted in, its created_at.
    A stored sequence-1 event (a message accepted before the row became its own first event) is shown
    as stored."""
    stored = list(message.events.all())
    if stored and stored[0].sequence == 1:
        return stored
    accepted = MessageEvent(tenant_id=message.tenant_id, message_id=message.pk, sequence=1,
                            status=Status.SCHEDULED if message.scheduled_at else Status.QUEUED,
                            source=MessageEvent.Source.API, detail="accepted", created_at=message.created_at)
    return [accepted, *stored]


@tenant_scoped
def message_search(
    *,
    tenant: Tenant,
    query: str = "",
    status: str | None = None,
    message_type: str | None = None,
    created_from: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Message]:
    """The tenant's messages, newest first, narrowed for the portal's message log.

    `query` matches a message id or a client reference exactly, or, when it looks like a phone
    number, every recipient whose number contains its digits. `created_from` is inclusive,
    `created_before` exclusive.
    """
    messages = message_list(tenant=tenant)
    if query := query.strip():
        match = Q(public_id=query) | Q(client_reference=query)
        if _PHONE_LIKE.fullmatch(query):
            match |= Q(to__contains=re.sub(r"\D", "", query))
        messages = messages.filter(match)
    if status:
        messages = messages.filter(status=status)
    if message_type:
        messages = messages.filter(message_type=message_type)
    if created_from:
        messages = messages.filter(created_at__gte=created_from)
    if created_before:
        messages = messages.filter(created_at__lt=created_before)
    return messages


def message_can_cancel(*, message: Message) -> bool:
    """Whether services.message_cancel would accept this message now (it re-checks under a row lock)."""
    return message.status in (Status.SCHEDULED, Status.QUEUED)


_NOT_DELIVERED = FINAL - {Status.DELIVERED, Status.CANCELED}


@tenant_scoped
def message_stats_today(*, tenant: Tenant, now: datetime | None = None) -> dict[str, int | None]:
    """Counts of the messages created today (UTC) for the dashboard.

    `delivered_rate` is the delivered share, in percent, of those that reached an outcome
    (delivered, undelivered, failed, expired or rejected); None until one has. Canceled
    messages never tried, so they count in `total` only.
    """
    start = (now or timezone.now()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    counts = message_list(tenant=tenant).filter(created_at__gte=start).aggregate(
        total=Count("pk"),
        delivered=Count("pk", filter=Q(status=Status.DELIVERED)),
        not_delivered=Count("pk", filter=Q(status__in=_NOT_DELIVERED)),
        pending=Count("pk", filter=Q(status__in=set(Status.values) - FINAL)),
    )
    outcomes = counts["delivered"] + counts["not_delivered"]
    return {**counts, "delivered_rate": round(100 * counts["delivered"] / outcomes) if outcomes else None}


@tenant_scoped
def template_list(*, tenant: Tenant) -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.filter(tenant=tenant)


@tenant_scoped
def template_get(*, tenant: Tenant, public_id: str) -> MessageTemplate:
    template = template_list(tenant=tenant).filter(public_id=public_id).first()
    if template is None:
        raise Http404("not found")
    return template


USAGE_GROUPS = ("day", "country", "message_type")


@tenant_scoped
def message_usage(*, tenant: Tenant, start: date, end: date, group_by: str) -> list[dict]:
    """The tenant's billed messages accepted from day `start` to day `end` (UTC, both included), less those
    whose hold was released (never charged): per group, `messages`, `segments` and `amount` (Decimal), sorted by
    group. By country: grouped by recipient in SQL, folded by the recipient's country (billing's rating rule:
    +44 7911… is GG) here, so the database returns one row per recipient, not per message."""
    rows = (Message.objects.filter(tenant=tenant, billed=True, created_at__gte=_day_start(start),
                                   created_at__lt=_day_start(end + timedelta(days=1)))
            .exclude(pk__in=billing_selectors.ledger_released_message_ids(tenant=tenant)))
    key = {"day": TruncDate("created_at", tzinfo=UTC), "country": F("to"), "message_type": F("message_type")}
    rows = rows.annotate(group=key[group_by]).values("group").order_by().annotate(
        messages=Count("pk"), segments=Sum("segments"), amount=Sum("price"))
    totals: dict[str, dict] = {}
    for row in rows:
        group = row["group"]
        if group_by == "country":
            group = (rating.number_countries(group) or ("",))[0]
        elif group_by == "day":
            group = group.isoformat()
        total = totals.setdefault(group, {"group": group, "messages": 0, "segments": 0, "amount": Decimal(0)})
        total["messages"] += row["messages"]
        total["segments"] += row["segments"] or 0
        total["amount"] += Decimal(row["amount"] or 0)
    return [totals[group] for group in sorted(totals)]


@tenant_scoped
def message_usage_by_country(*, tenant: Tenant, start: date, end: date) -> list[dict]:
    """message_usage's messages (the same days and rule: billed, less the released) by recipient country and
    message type: `country`, `message_type`, `messages`, `segments`, `amount`, sorted. Grouped by recipient
    and type in SQL and folded by country here, as message_usage does (billing's Billing pages and savings
    calculator read it through billing.hooks.message_usage)."""
    rows = (Message.objects.filter(tenant=tenant, billed=True, created_at__gte=_day_start(start),
                                   created_at__lt=_day_start(end + timedelta(days=1)))
            .exclude(pk__in=billing_selectors.ledger_released_message_ids(tenant=tenant))
            .values("to", "message_type").order_by()
            .annotate(messages=Count("pk"), segments=Sum("segments"), amount=Sum("price")))
    totals: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = ((rating.number_countries(row["to"]) or ("",))[0], row["message_type"])
        total = totals.setdefault(key, {"country": key[0], "message_type": key[1], "messages": 0, "segments": 0,
                                        "amount": Decimal(0)})
        total["messages"] += row["messages"]
        total["segments"] += row["segments"] or 0
        total["amount"] += Decimal(row["amount"] or 0)
    return [totals[key] for key in sorted(totals)]


def message_usage_captured(*, tenant: Tenant, start: datetime, end: datetime, currency: str) -> list[dict]:
    """The tenant's billed messages whose hold was captured (charged: they went to a carrier) from `start`
    (included) to `end` (excluded), whenever they were accepted, in `currency`: per (country, message_type),
    `messages`, `segments` and `amount` (Decimal, unrounded: what their captures charged, which an operator's
    price may have changed from the accept's `price`), sorted. An invoice's message lines (billing/invoices.py,
    through billing's hook): a message accepted in one month and captured in the next is on the next's.
    Grouped by recipient in SQL and folded by the recipient's country here, as message_usage does."""
    captures = billing_selectors.ledger_captures_between(tenant=tenant, start=start, end=end)
    charged = Subquery(captures.filter(message_id=OuterRef("pk")).values("balance_delta")[:1],
                       output_field=DecimalField(max_digits=18, decimal_places=6))
    rows = (Message.objects.filter(tenant=tenant, billed=True, currency=currency,
                                   pk__in=captures.values("message_id"))
            .values("to", "message_type").order_by()
            .annotate(messages=Count("pk"), segments=Sum("segments"), charged=Sum(charged)))
    totals: dict[tuple[str, str], dict] = {}
    for row in rows:
        country = (rating.number_countries(row["to"]) or ("",))[0]
        key = (country, row["message_type"])
        total = totals.setdefault(key, {"country": country, "message_type": row["message_type"], "messages": 0,
                                        "segments": 0, "amount": Decimal(0)})
        total["messages"] += row["messages"]
        total["segments"] += row["segments"] or 0
        total["amount"] -= Decimal(row["charged"] or 0)  # a capture's balance_delta is the charge, negative
    return [totals[key] for key in sorted(totals)]


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
