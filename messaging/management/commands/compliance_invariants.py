"""Print every message accepted for a number after its opt-out in the scope that applied; exit 1 when any."""
from django.core.management.base import BaseCommand, CommandError

from messaging.invariants import opt_out_violations


class Command(BaseCommand):
    help = ("Compliance's invariant: no message accepted for a number after that number's opt-out (or suppression) "
            "in the scope that applied. Prints the rows that break it; exits 1 when there is any.")

    def handle(self, *args, **options) -> None:
        rows = opt_out_violations()
        for row in rows:
            self.stdout.write(f"{row.message}\ttenant={row.tenant_id}\tto={row.to}\tfrom={row.sender}\t"
                              f"at={row.created_at.isoformat()}\t{row.state}")
        if rows:
            raise CommandError(f"{len(rows)} message(s) sent after an opt-out", returncode=1)
        self.stdout.write("compliance invariants: 0 rows")
