"""manage.py import_numbers FILE.csv: add or update inventory numbers; safe to run again."""
import csv
from numbers.inventory import CSV_COLUMNS, number_row_parse
from numbers.services import phone_number_upsert

from django.core.management.base import BaseCommand, CommandError

from smsportal.errors import DomainError


class Command(BaseCommand):
    help = (f"Import phone numbers from a CSV file with the columns {','.join(CSV_COLUMNS)} "
            "(capabilities like sms|voice). An existing number is updated, not duplicated.")

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *, file: str, **options):
        try:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise CommandError(f"Cannot read {file}: {error}") from None
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise CommandError(f"{file} lacks the column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
        counts = {"created": 0, "updated": 0, "errors": 0}
        for line, row in enumerate(rows, start=2):  # line 1 is the header
            try:
                _number, created = phone_number_upsert(**number_row_parse(row))
            except DomainError as error:
                counts["errors"] += 1
                self.stderr.write(f"line {line}: {error.field}: {error.message}")
                continue
            counts["created" if created else "updated"] += 1
        self.stdout.write(f"{counts['created']} created, {counts['updated']} updated, {counts['errors']} errors")
