"""Billing's reads: balances, and the invariant that every balance is the sum of its ledger."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection

from billing.models import Balance
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

# round(.., 6): exact on PostgreSQL's numeric; on SQLite, whose sums of these columns are floating point, it
# compares at the 6 places every amount has.
UNBALANCED_SQL = """
    SELECT b.tenant_id, b.balance, b.reserved, l.balance, l.reserved
    FROM billing_balance b
    LEFT JOIN (SELECT tenant_id, round(sum(balance_delta), 6) AS balance, round(sum(reserved_delta), 6) AS reserved
               FROM billing_ledgerentry GROUP BY tenant_id) l ON l.tenant_id = b.tenant_id
    WHERE round(b.balance, 6) <> coalesce(l.balance, 0) OR round(b.reserved, 6) <> coalesce(l.reserved, 0)
       OR b.balance + b.credit_limit < b.reserved
"""


@tenant_scoped
def balance_get(*, tenant: Tenant) -> Balance | None:
    return Balance.objects.filter(tenant=tenant).first()


def balances_unbalanced() -> list[tuple]:
    """Every balance whose cached figures differ from the sums of its ledger, or past its credit limit:
    (tenant id, balance, reserved, ledger balance, ledger reserved). Must be empty (a platform check, over
    every tenant, by raw SQL)."""
    with connection.cursor() as cursor:
        cursor.execute(UNBALANCED_SQL)
        return cursor.fetchall()
