"""python manage.py direct_prices_load [FILE.csv]: the savings calculator's direct operator reference prices
(billing/savings.py; default: the versioned billing/data/direct_prices.csv)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.savings import DATA_FILE, DIRECT_COLUMNS, direct_prices_load


class Command(BaseCommand):
    help = f"Load direct operator list prices (CSV: {','.join(DIRECT_COLUMNS)}; # lines are comments)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, nargs="?", default=DATA_FILE)

    def handle(self, *args, file: Path, **options):
        try:
            result = direct_prices_load(text=file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {getattr(exc, 'strerror', None) or exc}") from None
        except ValueError as exc:
            raise CommandError(f"{file}: {exc}; nothing was written") from None
        self.stdout.write(self.style.SUCCESS(f"{result.created} direct prices added, {result.updated} changed, "
                                             f"{result.unchanged} already there."))
