"""manage.py create_tenant SLUG --name NAME --owner-email EMAIL [--password PW] [--country ISO]"""
import phonenumbers
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError
from django.utils.text import slugify

from accounts import services
from accounts.models import Tenant


class Command(BaseCommand):
    help = "Create a tenant and its owner."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", default=None, help="The owner's password (else they use password reset).")
        parser.add_argument("--country", default="US",
                            help="Home country, ISO 3166-1 alpha-2 (default US): always a permitted destination; "
                                 "the rules' low-risk countries are the others it starts with.")

    def handle(self, slug, name, owner_email, password, country, **options):
        if country.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise CommandError(f"--country {country!r} is not an ISO 3166-1 alpha-2 country code.")
        # The service stores slugify(slug): check that, so "Acme" meets an existing "acme" with a clear message.
        if Tenant.objects.filter(slug=slugify(slug)).exists():
            raise CommandError(f"A tenant with slug {slugify(slug)!r} already exists.")
        try:
            tenant, owner = services.tenant_create(slug=slug, name=name, owner_email=owner_email, password=password,
                                                   country=country)
        except IntegrityError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}) with owner {owner.email}")
