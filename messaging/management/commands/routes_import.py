"""python manage.py routes_import CARRIER FILE.csv: a rate deck for one carrier (messaging/routing/decks.py)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.services.audit import SYSTEM, audit_record
from messaging.routing.decks import DeckError, deck_import, deck_parse
from messaging.routing.models import Carrier


class Command(BaseCommand):
    help = "Import a rate deck (CSV: prefix,country,operator,cost,currency,effective_from) for one carrier."

    def add_arguments(self, parser):
        parser.add_argument("carrier")
        parser.add_argument("file", type=Path)

    def handle(self, *args, carrier: str, file: Path, **options):
        found = Carrier.objects.filter(name=carrier).first()
        if found is None:
            raise CommandError(f"no carrier named {carrier!r} (load it first: manage.py carriers_load)")
        try:
            rows = deck_parse(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        except (DeckError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        result = deck_import(carrier=found, rows=rows, source=file.name)
        audit_record(action="routes.import", actor=SYSTEM, target=found,
                     changes={"file": file.name, "rows": len(rows), "routes_created": result.routes_created})
        self.stdout.write(f"{len(rows)} rows: {result.routes_created} routes created, {result.costs_added} costs added, "
                          f"{result.costs_unchanged} already there; {result.in_force_now} routes took a new cost now")
