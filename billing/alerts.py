"""The low-balance alert: the signed event `balance.low` and an email to the tenant's owners and billing members,
once per crossing of its threshold (Balance.low_balance_threshold).

A debit's own conditional UPDATE (hold, rental, lease, adjustment: billing/services.py) returns the figures this
needs, so the send path asks nothing more unless the alert fires. `low_balance_alerted_at` is the crossing's
marker: set here by one conditional UPDATE (exactly once however many debits race: they queue on the balance
row's lock, and each sees the marker the one before set), cleared by a credit that brings available back to
the threshold or above (it re-arms the alert). A release does not re-arm it, so holds and releases around the
threshold cannot send one alert after another.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.roles import Role
from billing.models import Balance
from billing.money import money_text
from smsportal.events import services as events
from smsportal.events.services import iso

BALANCE_LOW = "balance.low"
BILLING_EVENT_TYPES = (BALANCE_LOW,)
ALERTED_ROLES = (Role.OWNER, Role.BILLING)


@dataclass(frozen=True)
class LowBalance:
    """A balance's figures just after a debit, from its UPDATE's RETURNING."""

    tenant_id: int
    available: Decimal  # balance - reserved + credit limit (what live sends may still hold)
    threshold: Decimal | None
    armed: bool  # no alert sent for the current crossing yet


def balance_low_check(*, low: LowBalance) -> bool:
    """Raise the alert if this debit left available below the threshold and it is armed: then one conditional
    UPDATE takes the marker (in the debit's transaction, whose row lock it already holds), and only the caller
    that took it records the event and, after commit, sends the email. True when this call raised it. Free
    (no query) when there is no threshold, it is not crossed or the alert was already raised."""
    if low.threshold is None or not low.armed or low.available >= low.threshold:
        return False
    now = timezone.now()
    return _balance_low_raise(low=low, now=now)


def _balance_low_raise(*, low: LowBalance, now) -> bool:
    # unscoped: the debit's tenant, by id (the send path, the charge job)
    taken = Balance.unscoped.filter(
        tenant_id=low.tenant_id, low_balance_alerted_at=None, low_balance_threshold__isnull=False,
        low_balance_threshold__gt=F("balance") + F("credit_limit") - F("reserved"),
    ).update(low_balance_alerted_at=now)
    if not taken:
        return False
    _announce(tenant_id=low.tenant_id, available=low.available, at=now)
    return True


def balance_low_announce(*, tenant_id: int, available: Decimal, at) -> None:
    """The alert of a crossing whose debit took the marker itself (a single send's hold: billing.services
    HoldStatement): the event and, after commit, the email; `available` is what that debit left."""
    with transaction.atomic():
        _announce(tenant_id=tenant_id, available=available, at=at)


def _announce(*, tenant_id: int, available: Decimal, at) -> None:
    # unscoped: the debit's tenant, by id (the row just marked)
    balance = Balance.unscoped.select_related("tenant").get(tenant_id=tenant_id)
    data = _event_data(balance, available=available)
    events.event_emit(tenant_id=tenant_id, event_type=BALANCE_LOW, data=data, timestamp=at,
                      subject=f"balance.low:{iso(at)}")
    _email_on_commit(balance=balance, data=data)


def _event_data(balance: Balance, *, available: Decimal) -> dict:
    """`available` is the figure the crossing debit left (its RETURNING): a single send's hold has committed
    already when its alert is raised, and later sends may have moved the row since; the rest is as read now."""
    return {"available": money_text(available), "threshold": money_text(balance.low_balance_threshold),
            "balance": money_text(balance.balance), "reserved": money_text(balance.reserved),
            "credit_limit": money_text(balance.credit_limit), "currency": balance.currency}


def _email_on_commit(*, balance: Balance, data: dict) -> None:
    tenant = balance.tenant
    recipients = sorted({m.user.email for m in accounts_selectors.membership_list(tenant=tenant)
                         if m.role in ALERTED_ROLES and m.user.email})
    if not recipients:
        return
    context = {"tenant": tenant, **data}
    transaction.on_commit(lambda: send_mail(
        subject=f"{tenant.name}: your smsportal balance is low ({data['available']} {data['currency']} left)",
        message=render_to_string("emails/balance_low.txt", context), from_email=None, recipient_list=recipients,
    ), robust=True)
