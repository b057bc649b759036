"""manage.py create_tenant SLUG --name NAME --owner-email EMAIL [--password PW]"""
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

    def handle(self, slug, name, owner_email, password, **options):
        # The service stores slugify(slug): check that, so "Acme" meets an existing "acme" with a clear message.
        if Tenant.objects.filter(slug=slugify(slug)).exists():
            raise CommandError(f"A tenant with slug {slugify(slug)!r} already exists.")
        try:
            tenant, owner = services.tenant_create(slug=slug, name=name, owner_email=owner_email, password=password)
        except IntegrityError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}) with owner {owner.email}")
