"""manage.py seed_demo: the demo tenant, its owner, a test key and the simulator's numbers; safe to run again.

It lives in messaging, the top app, because it stocks numbers as well as making the tenant: accounts,
below numbers, must not import it (.importlinter).
"""
import os
import secrets
from numbers.inventory import demo_stock
from numbers.services import phone_number_upsert

from django.core.management.base import BaseCommand

from accounts import selectors, services

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_KEY_NAME = "Demo test key"


class Command(BaseCommand):
    help = ("Create (or refresh) the demo tenant, its owner demo@example.com, a test-mode API key and the "
            "carrier simulator's phone numbers.")

    def handle(self, **options):
        password = secrets.token_urlsafe(12)
        tenant = selectors.tenant_by_slug(slug=DEMO_SLUG)
        if tenant is None:
            tenant, _owner = services.tenant_create(slug=DEMO_SLUG, name="Demo Company", owner_email=DEMO_EMAIL,
                                                    password=password)
        else:
            # Idempotent: the same tenant and owner; a fresh password and key to print.
            services.user_get_or_create(email=DEMO_EMAIL, password=password)
        for old in selectors.api_key_list(tenant=tenant).filter(name=DEMO_KEY_NAME, revoked_at=None):
            services.api_key_revoke(tenant=tenant, api_key=old, actor=services.SYSTEM)
        _key, secret = services.api_key_create(tenant=tenant, name=DEMO_KEY_NAME, mode=services.ApiKeyMode.TEST,
                                               actor=services.SYSTEM)
        created = sum(phone_number_upsert(**fields)[1] for fields in demo_stock())
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS("Demo tenant ready."))
        self.stdout.write(f"  Portal:   {base}/portal/  (email {DEMO_EMAIL}, password {password})")
        self.stdout.write(f"  Test key: {secret}")
        self.stdout.write(f"  Numbers:  {created} added to the simulator's inventory")
        self.stdout.write(f'  Try:      curl -H "Authorization: Bearer {secret}" {base}/v1/me')
