"""python manage.py routes_import CARRIER FILE.csv: a rate deck for one carrier (messaging/routing/decks.py)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services.audit import SYSTEM, audit_record
from messaging.routing.decks import DeckError, deck_import, deck_parse
from messaging.routing.models import Carrier


class Command(BaseCommand):
    help = "Import a rate deck (CSV: prefix,country,operator,cost,currency,effective_from) for one carrier."

    def add_arguments(self, parser):
        parser.add_argument("carrier")
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="print what the deck would change; change nothing")

    def handle(self, *args, carrier: str, file: Path, dry_run: bool = False, **options):
        found = Carrier.objects.filter(name=carrier).first()
        if found is None:
            raise CommandError(f"no carrier named {carrier!r} (load it first: manage.py carriers_load)")
        try:
            rows = deck_parse(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        except (DeckError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        with transaction.atomic():
            result = deck_import(carrier=found, rows=rows, source=file.name)
            if dry_run:  # the whole import, then rolled back: the figures are exactly what it would do
                transaction.set_rollback(True)
            else:
                audit_record(action="routes.import", actor=SYSTEM, target=found,
                             changes={"file": file.name, "rows": len(rows), "routes_created": result.routes_created})
        would = "would be " if dry_run else ""
        self.stdout.write(f"{'dry run, nothing changed: ' if dry_run else ''}{len(rows)} rows: {result.routes_created} "
                          f"routes {would}created, {result.costs_added} costs {would}added, {result.costs_unchanged} "
                          f"already there; {result.in_force_now} routes {'would take' if dry_run else 'took'} a new "
                          "cost now")
