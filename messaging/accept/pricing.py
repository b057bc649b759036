"""Step 4 with billing: rating in the pipeline's price step, the prepaid hold in its reserve step (docs/billing.md).

Messaging sits above billing, so it registers billing's service functions here; billing never imports
the pipeline. Rating reads only the price lists in process memory: it adds no round trip to a send. A live
single send's hold is two more CTEs of its insert statement (still one round trip, no transaction); a batch's,
or a send by a key with a daily spend cap, is one more statement in the accept's transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection

from accounts.services import ApiKeyMode
from billing import rating, services
from messaging.accept import registry

if TYPE_CHECKING:
    from messaging.accept.steps import AcceptContext, Draft
    from messaging.services import PreparedMessage


def billing_price(*, context: AcceptContext, message: PreparedMessage, reserve: bool) -> registry.Price | None:
    """Segments times the unit price of the destination and type; a test key's is shown, `billed` false.
    Raises NoPriceForDestination (422) when no list prices the destination."""
    if not settings.BILLING_ENABLED:
        return None
    rate = rating.message_rate(tenant_id=context.tenant.pk, to=message.to, message_type=message.message_type)
    return registry.Price(amount=rate.unit * message.analysis.segment_count, currency=rate.currency,
                          billed=context.mode == ApiKeyMode.LIVE)


registry.price_step(billing_price, writes=False)


def _holds(context: AcceptContext) -> bool:
    return settings.BILLING_ENABLED and context.mode == ApiKeyMode.LIVE


def _billed(drafts: Sequence[Draft]) -> list[Draft]:
    return [draft for draft in drafts if draft.billed and draft.price is not None]


def _folds(context: AcceptContext) -> bool:
    """A single live send holds in its insert's statement (PostgreSQL), unless its key has a daily spend cap:
    the key's count is a row of its own, which must not stay counted when the balance refuses."""
    return connection.vendor == "postgresql" and (context.api_key is None or context.api_key.daily_spend_cap is None)


def billing_hold_statement(*, context: AcceptContext, drafts: Sequence[Draft]) -> services.HoldStatement | None:
    """The single send's hold as CTEs of its insert (billing.services.balance_hold_statement): one round trip,
    and the balance row locked only for that statement."""
    billed = _billed(drafts)
    if not billed:
        return None
    return services.balance_hold_statement(tenant_id=context.tenant.pk, amount=sum(draft.price for draft in billed),
                                           currency=billed[0].currency, messages=len(billed))


@registry.reserve_step(writes=_holds, statement=billing_hold_statement, folds=_folds)
def billing_hold(*, context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """A live send holds the total price of its messages on the tenant's balance in the accept's transaction;
    402 insufficient_balance (or spend_limit_reached: a daily spend cap of the tenant or the key) refuses the
    whole request, and nothing of it is written."""
    billed = _billed(drafts)
    if not billed:
        return
    key = context.api_key
    services.balance_hold(tenant_id=context.tenant.pk, amount=sum(draft.price for draft in billed),
                          currency=billed[0].currency, messages=len(billed), api_key_id=key.pk if key else None,
                          api_key_cap=key.daily_spend_cap if key else None)
