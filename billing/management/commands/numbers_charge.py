"""python manage.py numbers_charge [--day YYYY-MM-DD]: charge number rental and leases now (what the daily beat
job does), or one complete UTC day; idempotent: a day charged already is not charged again."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date

from billing.charges import number_charges_run


class Command(BaseCommand):
    help = ("Charge number rental (per day held) and leases (per second at the hourly price) from the recorded "
            "usage of complete UTC days not charged yet, after collecting owed charges; --day: only that day.")

    def add_arguments(self, parser):
        parser.add_argument("--day", help="A UTC day before today, YYYY-MM-DD.")

    def handle(self, *args, day: str | None = None, **options):
        chosen = None
        if day is not None:
            try:
                chosen = parse_date(day)
            except ValueError:
                chosen = None
            if chosen is None:
                raise CommandError(f"--day {day!r} is not a date (YYYY-MM-DD)")
            if chosen >= timezone.now().date():
                raise CommandError(f"--day {day}: only a complete UTC day (before today) is charged")
        counts = number_charges_run(day=chosen)
        self.stdout.write(", ".join(f"{name} {count}" for name, count in counts.items()))
