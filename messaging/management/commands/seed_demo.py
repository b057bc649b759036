"""manage.py seed_demo: the demo tenant, its owner, a test key, the simulator's numbers and the default price
lists, per segment and per number (billing/demo.py); safe to run again.

With LIVE_CARRIER=routes (make run's .env) also a live key, and the local carriers local-smpp and local-http
with their routes (messaging/carriers/local/demo.py), loaded as `manage.py carriers_load` loads a file.

It lives in messaging, the top app, because it stocks numbers as well as making the tenant: accounts,
below numbers, must not import it (.importlinter).
"""
import os
import secrets
from decimal import Decimal
from numbers.errors import NumberHeld
from numbers.inventory import demo_numbers, demo_stock
from numbers.services import number_shared_sender_set, phone_number_upsert

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import selectors, services
from billing.demo import demo_number_prices_load, demo_prices_csv
from billing.money import money_text
from billing.prices import prices_import
from billing.savings import direct_prices_load
from billing.selectors import balance_get
from billing.services import balance_credit
from messaging.carriers.local import demo
from messaging.routing.loader import carriers_load

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_KEY_NAME = "Demo test key"
DEMO_LIVE_KEY_NAME = "Demo live key"
DEMO_CREDIT = Decimal("50.00")
# The shared senders: beyond the demo stock's numbers (which start at 0 and 500), so never rented as stock.
SHARED_SENDER_COUNTRIES = ("US", "CA")
SHARED_SENDER_START = 900
SHARED_SENDER_TYPE = "mobile"  # numbers.models.NumberType.MOBILE (messaging may not import numbers.models)


class Command(BaseCommand):
    help = ("Create (or refresh) the demo tenant, its owner demo@example.com, a test-mode API key and the "
            "carrier simulator's phone numbers; with LIVE_CARRIER=routes also a live key and the local carriers.")

    def handle(self, **options):
        password = secrets.token_urlsafe(12)
        tenant = selectors.tenant_by_slug(slug=DEMO_SLUG)
        if tenant is None:
            tenant, _owner = services.tenant_create(slug=DEMO_SLUG, name="Demo Company", owner_email=DEMO_EMAIL,
                                                    password=password)
        else:
            # Idempotent: the same tenant and owner; a fresh password and key to print.
            services.user_get_or_create(email=DEMO_EMAIL, password=password)
        secret = _key_rotate(tenant, DEMO_KEY_NAME, services.ApiKeyMode.TEST)
        created = sum(phone_number_upsert(**fields)[1] for fields in demo_stock())
        shared = _shared_senders()
        prices = prices_import(tenant=None, text=demo_prices_csv())
        number_prices = demo_number_prices_load()
        direct = direct_prices_load()
        credited = _demo_credit(tenant)
        live = settings.LIVE_CARRIER == "routes"
        live_secret = _key_rotate(tenant, DEMO_LIVE_KEY_NAME, services.ApiKeyMode.LIVE) if live else ""
        changed = _local_carriers_load() if live else 0
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS("Demo tenant ready."))
        self.stdout.write(f"  Portal:   {base}/portal/  (email {DEMO_EMAIL}, password {password})")
        self.stdout.write(f"  Test key: {secret}")
        self.stdout.write(f"  Numbers:  {created} added to the simulator's inventory")
        self.stdout.write(f"  Shared:   {', '.join(shared)}: the platform's shared senders, which an alphanumeric "
                          "`from` to the US or Canada is sent from instead (sender_substituted)")
        self.stdout.write(f"  Prices:   {prices.created} added to the default price list "
                          f"({prices.unchanged} already there); {number_prices} number prices added")
        self.stdout.write(f"  Direct:   {direct.created} direct operator reference prices added, for the savings "
                          f"calculator ({base}/pricing/savings/)")
        balance = balance_get(tenant=tenant)
        self.stdout.write(f"  Balance:  {money_text(balance.balance)} {balance.currency} prepaid"
                          + (f" ({credited} credited now)" if credited else ""))
        self.stdout.write(f'  Try:      curl -H "Authorization: Bearer {secret}" {base}/v1/me')
        if live:
            self.stdout.write(f"  Live key: {live_secret}  (LIVE_CARRIER=routes: live messages go by the routing table)")
            self.stdout.write(f"  Carriers: {demo.SMPP_CARRIER} (SMPP, 127.0.0.1:{settings.LOCAL_SMPP_PORT}, "
                              f"{demo.SMPP_COST} {demo.CURRENCY}) and {demo.HTTP_CARRIER} (HTTP, 127.0.0.1:"
                              f"{settings.LOCAL_HTTP_CARRIER_PORT}, {demo.HTTP_COST} {demo.CURRENCY}, the failover) "
                              f"for +{' +'.join(demo.COUNTRIES)}; {changed} changed")


def _shared_senders() -> list[str]:
    """One shared sender number for the US and one for Canada (sender substitution: docs/compliance.md "Sender
    IDs"), added to the inventory and marked shared when no tenant holds them; their numbers."""
    numbers = []
    for country in SHARED_SENDER_COUNTRIES:
        number = next(demo_numbers(country, SHARED_SENDER_TYPE, 1, start=SHARED_SENDER_START))
        phone_number, _ = phone_number_upsert(number=number, country=country, type=SHARED_SENDER_TYPE,
                                              capabilities=["sms"], carrier="simulator",
                                              monthly_cost=Decimal("0"), monthly_price=Decimal("0"))
        try:
            number_shared_sender_set(number=phone_number, shared_sender=True)
        except NumberHeld:  # a tenant holds it (an earlier demo rented it): left as it is
            continue
        numbers.append(number)
    return numbers


def _demo_credit(tenant) -> Decimal:
    """A prepaid balance for the demo's live key (each live message holds its price: docs/billing.md): topped
    up to DEMO_CREDIT when it has run out or was never funded; what was credited."""
    balance = balance_get(tenant=tenant)
    if balance is not None and balance.available > 0:
        return Decimal(0)
    amount = DEMO_CREDIT - (balance.available if balance is not None else Decimal(0))
    balance_credit(tenant=tenant, amount=amount, reason="demo credit (seed_demo)", actor=services.SYSTEM)
    return amount


def _key_rotate(tenant, name: str, mode: str) -> str:
    """Revoke the demo key called `name` and make a new one: exactly one is active; its secret, to print."""
    for old in selectors.api_key_list(tenant=tenant).filter(name=name, revoked_at=None):
        services.api_key_revoke(tenant=tenant, api_key=old, actor=services.SYSTEM)
    _key, secret = services.api_key_create(tenant=tenant, name=name, mode=mode, actor=services.SYSTEM)
    return secret


def _local_carriers_load() -> int:
    """The local carriers and their routes, upserted by name as carriers_load does (unchanged on a second run)."""
    changes = [change for change in carriers_load(demo.carriers_document(), source="seed_demo")
               if change.action != "unchanged"]
    if changes:
        services.audit_record(action="carriers.load", actor=services.SYSTEM,
                              changes={"file": "seed_demo", "changes": [str(change) for change in changes]})
    return len(changes)
