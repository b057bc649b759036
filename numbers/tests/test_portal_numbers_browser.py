"""The portal's numbers pages in a real browser: lease a number, watch its countdown, see a code arrive live, copy it.

Same set-up as messaging/tests/test_portal_messages_browser.py (headless Debian Chromium through
Playwright against pytest-django's live server); console errors and CSP violations fail the test.
"""
import re
from datetime import datetime, timedelta
from numbers import services
from numbers.inbound import inbound_receive
from numbers.models import NumberEvent, NumberLease, NumberType
from numbers.tests.factories import stock

import pytest
from django.utils import timezone

from accounts import services as accounts_services
from accounts.tests.factories import PASSWORD
from accounts.tests.test_portal_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not __import__("shutil").which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")]


@pytest.fixture
def browser(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM guard would refuse our queries.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, base: str, *, javascript: bool = True):
    """A fresh page allowed to use the clipboard, and the list its console errors, page errors and CSP violations go to."""
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript)
    if javascript:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.set_default_timeout(15_000)
    return page, problems


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/portal/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/portal/")


def shot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"/tmp/portal-numbers-{name}.png", full_page=True)


def seconds_left(text: str) -> int:
    """ "9:58 left" -> 598; "1:02:03 left" -> 3723."""
    total = 0
    for part in text.removesuffix(" left").split(":"):
        total = total * 60 + int(part)
    return total


@pytest.fixture
def acme(transactional_db):
    tenant, owner = accounts_services.tenant_create(slug="acme", name="Acme Logistics",
                                                    owner_email="owner@acme.example.com", password=PASSWORD)
    stock(3, country="US", type=NumberType.MOBILE)
    return tenant, owner


def test_lease_a_number_and_see_its_code_arrive_live(acme, live_server, browser):
    from playwright.sync_api import expect

    tenant, owner = acme
    base = live_server.url
    page, problems = open_page(browser, base)
    sign_in(page, base, owner.email)

    # The empty numbers page leads to the search, where the available numbers show their price.
    page.click("nav.sidebar a[href='/portal/numbers/']")
    expect(page.locator("main")).to_contain_text("No numbers yet")
    page.click("main .page-actions >> text=Get a number")
    page.wait_for_url("**/portal/numbers/search/")
    expect(page.locator("table.table-available tbody tr")).to_have_count(3)
    shot(page, "search")

    # Lease a US mobile number for 10 minutes.
    page.fill("form.lease-form input[name=country]", "US")
    page.select_option("form.lease-form select[name=ttl_seconds]", "600")
    page.click("form.lease-form button[value=lease]")
    page.wait_for_url("**/portal/numbers/leases/lse_*/")
    lease = NumberLease.unscoped.get(tenant=tenant)
    expect(page.locator("h1.lease-number")).to_have_text(lease.number.number)

    # The countdown runs: about ten minutes, and less a moment later.
    countdown = page.locator("[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^\d:\d\d left$"))
    first = seconds_left(countdown.inner_text())
    assert 590 <= first <= 600
    expect(countdown).not_to_have_text(countdown.inner_text())
    assert seconds_left(countdown.inner_text()) < first
    shot(page, "lease-empty")

    # A verification SMS arrives: its code shows up without a reload.
    page.evaluate("window.notReloaded = true")
    inbound_receive(to=lease.number.number, sender="+14155550999", text="Your WhatsApp code is 482-913",
                    carrier="simulator", carrier_message_id="wa-1", received_at=timezone.now())
    code = page.locator("[data-inbound-list] [data-code]")
    expect(code).to_have_text("482913")
    expect(page.locator("[data-inbound-list] .inbound")).to_contain_text("WhatsApp")
    expect(page.locator("[data-inbound-empty]")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    # A second one goes on top.
    inbound_receive(to=lease.number.number, sender="+14155550998", text="Your Google verification code is 771234",
                    carrier="simulator", carrier_message_id="g-1", received_at=timezone.now())
    expect(code.first).to_have_text("771234")
    expect(code).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True

    # Copy puts the code on the clipboard and says so.
    copy = page.locator("[data-inbound-list] .inbound").nth(1).locator("button[data-copy-code]")
    expect(copy).to_be_visible()
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "482913"
    shot(page, "lease-codes")

    # Extend by 15 minutes: the end moves by as much.
    end = datetime.fromisoformat(page.get_attribute("[data-lease-end]", "datetime"))
    page.click("form.extend-form-full button[value='900']")
    expect(page.locator(".flash-stack")).to_contain_text("is yours until")
    moved = datetime.fromisoformat(page.get_attribute("[data-lease-end]", "datetime"))
    assert moved - end == timedelta(seconds=900)
    assert seconds_left(countdown.inner_text()) > 600
    assert NumberEvent.unscoped.filter(number=lease.number, kind="extended", actor=owner.email).exists()

    # The numbers page lists it with its own countdown and the latest codes.
    page.click("nav.sidebar a[href='/portal/numbers/']")
    expect(page.locator("table.table-numbers [data-countdown]")).to_have_text(re.compile(r" left$"))
    expect(page.locator("table.table-inbound")).to_contain_text("482913")
    shot(page, "list")

    # Release, after confirming.
    page.click("table.table-numbers >> text=Release")
    page.click("main form button.btn-danger")
    page.wait_for_url("**/portal/numbers/")
    expect(page.locator(".flash-stack")).to_contain_text("was released")
    lease.refresh_from_db()
    assert lease.released_at is not None and lease.release_reason == "released"
    page.click("table.table-inbound a")
    expect(page.locator("[data-lease-status]")).to_have_text("Released")

    assert problems == []


def test_the_page_notices_the_lease_ending_and_stops_polling(acme, live_server, browser):
    from playwright.sync_api import expect

    tenant, owner = acme
    page, problems = open_page(browser, live_server.url)
    sign_in(page, live_server.url, owner.email)
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    page.goto(f"{live_server.url}/portal/numbers/leases/{lease.public_id}/")
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r" left$"))
    # when it is released elsewhere (the API, say)
    services.number_lease_release(tenant=tenant, lease=lease)
    # then the page says so and hides the actions
    expect(page.locator("[data-lease-status]")).to_have_text("Released")
    expect(page.locator("section[data-lease-actions]")).to_be_hidden()
    assert problems == []


def test_without_javascript_the_lease_shows_its_end_and_no_copy_button(acme, live_server, browser):
    from playwright.sync_api import expect

    tenant, owner = acme
    page, problems = open_page(browser, live_server.url, javascript=False)
    sign_in(page, live_server.url, owner.email)
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    inbound_receive(to=lease.number.number, sender="+14155550999", text="Your WhatsApp code is 482-913",
                    carrier="simulator", carrier_message_id="wa-1", received_at=timezone.now())
    page.goto(f"{live_server.url}/portal/numbers/leases/{lease.public_id}/")
    expect(page.locator("[data-countdown]")).to_have_text(f"until {lease.expires_at:%b %-d, %H:%M:%S} UTC")
    expect(page.locator("[data-code]")).to_have_text("482913")
    expect(page.locator("button[data-copy-code]")).to_be_hidden()
    # Extending works as a plain form post.
    page.fill("input[name=ttl_seconds]", "120")
    page.click("form.extend-form-full button.btn-primary")
    expect(page.locator(".flash-stack")).to_contain_text("is yours until")
    lease.refresh_from_db()
    assert lease.expires_at - lease.started_at == timedelta(seconds=720)
    assert problems == []
