"""manage.py import_numbers FILE.csv: add or update inventory numbers; safe to run again."""
from numbers.inventory import CSV_COLUMNS, csv_rows_read, csv_unescape, number_row_parse
from numbers.services import phone_number_upsert

from django.core.management.base import BaseCommand, CommandError

from smsportal.errors import DomainError


class Command(BaseCommand):
    help = (f"Import phone numbers from a CSV file with the columns {','.join(CSV_COLUMNS)} "
            "(capabilities like sms|voice; other columns, such as the admin export's status and holder, "
            "are ignored). An existing number is updated, not duplicated. Unlike the admin upload, good rows "
            "are imported even when others are bad.")

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *, file: str, **options):
        try:
            with open(file, newline="", encoding="utf-8-sig") as handle:
                rows = csv_rows_read(handle.read())
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from None
        except DomainError as error:
            raise CommandError(f"{file}: {error.message}") from None
        counts = {"created": 0, "updated": 0, "errors": 0}
        for line, row in rows:
            try:
                fields = number_row_parse({key: csv_unescape(value) for key, value in row.items() if key})
                _number, created = phone_number_upsert(**fields)
            except DomainError as error:
                counts["errors"] += 1
                self.stderr.write(f"line {line}: {error.field}: {error.message}")
                continue
            counts["created" if created else "updated"] += 1
        self.stdout.write(f"{counts['created']} created, {counts['updated']} updated, {counts['errors']} errors")
