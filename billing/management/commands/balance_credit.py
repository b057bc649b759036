"""python manage.py balance_credit SLUG AMOUNT --reason TEXT: a top-up (or, negative, an adjustment), audited."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from accounts import selectors
from accounts.services.audit import SYSTEM
from billing.services import balance_credit
from smsportal.errors import DomainError


class Command(BaseCommand):
    help = "Credit a tenant's balance (a top-up) or, with a negative amount, adjust it; --reason is recorded."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("amount")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, slug: str, amount: str, reason: str, **options):
        tenant = selectors.tenant_by_slug(slug=slug)
        if tenant is None:
            raise CommandError(f"no tenant with the slug {slug!r}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise CommandError(f"amount {amount!r} is not a decimal number") from None
        try:
            entry = balance_credit(tenant=tenant, amount=value, reason=reason, actor=SYSTEM)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{slug}: {entry.kind} of {value} {entry.currency} recorded")
