"""python manage.py country_rules_load [FILE.json]: the country rules (default: the versioned
compliance/data/country_rules.json) into CountryRule; account managers' overrides are kept (docs/compliance.md)."""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from compliance.country_data import DATA_FILE, country_rules_load


class Command(BaseCommand):
    help = "Load the country rules dataset (idempotent; account-manager overrides survive)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, nargs="?", default=DATA_FILE)

    def handle(self, *args, file: Path, **options):
        try:
            result = country_rules_load(path=file)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {getattr(exc, 'strerror', None) or exc}") from None
        except (ValueError, json.JSONDecodeError) as exc:
            raise CommandError(f"{file}: {exc}; nothing was written") from None
        self.stdout.write(self.style.SUCCESS(
            f"Country rules {result.version}: {result.created} added, {result.updated} changed, "
            f"{result.unchanged} already there; {result.overridden} keep an account manager's overrides."))
