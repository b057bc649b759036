"""python manage.py prices_import FILE.csv [--numbers] [--tenant SLUG]: a price list from CSV (billing/prices.py):
message prices, or number prices with --numbers."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts import selectors
from accounts.services.audit import SYSTEM, audit_record
from billing.prices import COLUMNS, NUMBER_COLUMNS, number_prices_import, prices_import


class Command(BaseCommand):
    help = (f"Import prices (CSV: {','.join(COLUMNS)}) into the default price list, or a tenant's with --tenant; "
            f"with --numbers, number prices (CSV: {','.join(NUMBER_COLUMNS)}).")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--tenant", help="The tenant's slug: its own list, which overrides the default.")
        parser.add_argument("--numbers", action="store_true",
                            help=f"Number prices (monthly rental and lease per hour): {','.join(NUMBER_COLUMNS)}.")

    def handle(self, *args, file: Path, tenant: str | None, numbers: bool = False, **options):
        found = None
        if tenant:
            found = selectors.tenant_by_slug(slug=tenant)
            if found is None:
                raise CommandError(f"no tenant with the slug {tenant!r}")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {getattr(exc, 'strerror', None) or exc}") from None
        result = (number_prices_import if numbers else prices_import)(tenant=found, text=text)
        if result.errors:
            for line, message in result.errors:
                self.stderr.write(f"{file}:{line}: {message}")
            raise CommandError(f"{len(result.errors)} bad lines: nothing imported")
        audit_record(action="number_prices.import" if numbers else "prices.import", actor=SYSTEM, tenant=found,
                     target=found, changes={"file": file.name, "created": result.created, "updated": result.updated})
        list_name = f"the price list of {found.slug}" if found else "the default price list"
        if numbers:
            list_name = f"the number prices of {found.slug}" if found else "the default number prices"
        self.stdout.write(f"{list_name}: {result.created} prices added, {result.updated} changed, "
                          f"{result.unchanged} already there")
