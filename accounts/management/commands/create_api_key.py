"""manage.py create_api_key SLUG --name NAME [--mode live|test] [--scope S ...]

Prints the secret alone on the last line of its output.
"""
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import Tenant
from accounts.roles import ALL_SCOPES
from smsportal.errors import DomainError


class Command(BaseCommand):
    help = "Create an API key for a tenant; without --scope it has every scope, without --mode it is a test key."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--mode", choices=["live", "test"], default="test")
        parser.add_argument("--scope", action="append", dest="scopes", choices=ALL_SCOPES)

    def handle(self, slug, name, mode, scopes, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        try:
            api_key, secret = services.api_key_create(tenant=tenant, name=name, mode=mode, scopes=scopes,
                                                      actor=services.SYSTEM)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created {api_key.mode} key {api_key.public_id} ({api_key.prefix}) with scopes "
                          f"{', '.join(api_key.scopes)}. The secret is shown once:")
        self.stdout.write(secret)
