"""python manage.py carriers_load FILE [--dry-run]: carriers and routes from a JSON or YAML file (routing/loader.py)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError

from accounts.services.audit import SYSTEM, audit_record
from messaging.routing.loader import CarriersFileError, carriers_load


class Command(BaseCommand):
    help = "Load carriers and routes from a JSON or YAML file: an idempotent upsert by name. Secrets are never printed."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")

    def handle(self, *args, file: Path, dry_run: bool, **options):
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        try:
            document = yaml.safe_load(text) if file.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise CommandError(f"{file}: not valid {'YAML' if file.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                               f"{str(exc).splitlines()[0]}") from None
        try:
            changes = carriers_load(document, dry_run=dry_run, source=file.name)
        except CarriersFileError as exc:
            raise CommandError(f"{file}: {exc}") from None
        for change in changes:
            self.stdout.write(str(change))
        changed = [c for c in changes if c.action != "unchanged"]
        if not dry_run and changed:
            audit_record(action="carriers.load", actor=SYSTEM,
                         changes={"file": file.name, "changes": [str(c) for c in changed]})
        verb = "would change" if dry_run else "changed"
        self.stdout.write(f"{len(changed)} of {len(changes)} {verb}" + (" (dry run: nothing written)" if dry_run else ""))
