"""python manage.py invoices_generate [--period YYYY-MM] [--tenant SLUG]: the month's invoices (default: last month)."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts import selectors
from billing import invoices
from smsportal.errors import DomainError
from smsportal.tenancy import tenant_context


class Command(BaseCommand):
    help = ("Create each tenant's invoice for a month that has ended (default: last month), or only --tenant's. "
            "Idempotent: a tenant's invoice for the month is made once; a second run skips it.")

    def add_arguments(self, parser):
        parser.add_argument("--period", help="The month, YYYY-MM (default: last month, UTC).")
        parser.add_argument("--tenant", help="Only this tenant's slug.")
        parser.add_argument("--to-date", action="store_true",
                            help="A draft statement of the month so far (the current month too), shown to the "
                                 "tenant; replaced by the next --to-date run and by the month's invoice.")

    def handle(self, *args, period: str | None, tenant: str | None, to_date: bool = False, **options):
        try:
            month = invoices.period_parse(period) if period is not None else (
                timezone.now().date().replace(day=1) if to_date else invoices.period_previous())
            only = None
            if tenant is not None:
                only = selectors.tenant_by_slug(slug=tenant)
                if only is None:
                    raise CommandError(f"no tenant with the slug {tenant!r}")
            results = invoices.invoices_generate(period=month, tenant=only, to_date=to_date)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for result in results:
            self.stdout.write(self._line(result, month))
        made = sum(result.outcome == "created" for result in results)
        self.stdout.write(f"{month:%Y-%m}: {made} created, {len(results) - made} skipped")

    def _line(self, result: invoices.Generated, month) -> str:
        slug, invoice = result.tenant.slug, result.invoice
        if result.outcome == "empty":
            return f"{slug}: skipped, nothing to bill in {month:%Y-%m}"
        label = invoice.number or f"{'draft to date' if invoice.to_date else 'draft'} {invoice.public_id}"
        with tenant_context(result.tenant):
            lines = invoice.lines.count()
        figures = f"{label}, {lines} lines, total {invoice.total} {invoice.currency}"
        if result.outcome == "exists":
            return f"{slug}: skipped, already invoiced ({figures})"
        return f"{slug}: created {figures}"
