"""The portal's messaging pages in a real browser: the live length check, sending, the log and the timeline.

Same set-up as accounts/tests/test_portal_browser.py (headless Debian Chromium through Playwright
against pytest-django's live server); console errors and CSP violations fail the test.
"""
from datetime import timedelta
from numbers.tests.factories import shared_senders

import pytest
from django.utils import timezone

from accounts import services as accounts_services
from accounts.tests.factories import PASSWORD
from accounts.tests.test_portal_browser import CHROMIUM, CHROMIUM_ARGS
from compliance.tests.consent_helpers import opted_in
from messaging import accept, pipeline, services
from messaging.models import Message, Status

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not __import__("shutil").which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")]


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def browser(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM guard would refuse our queries.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, *, javascript: bool = True):
    """A fresh page, and the list its console errors, page errors and CSP violations go to."""
    problems: list[str] = []
    page = browser.new_context(viewport={"width": 1360, "height": 900}, java_script_enabled=javascript).new_page()
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


@pytest.fixture
def acme(transactional_db):
    tenant, owner = accounts_services.tenant_create(slug="acme", name="Acme Logistics",
                                                    owner_email="owner@acme.example.com", password=PASSWORD)
    services.template_create(tenant=tenant, name="login_code", body="Your Acme code is ${code}. It expires in "
                             "${minutes} minutes.", message_type="otp", description="Sign-in codes")
    return tenant, owner


def shot(page, name: str) -> None:
    # From the top: a full-page capture of a scrolled page draws the sticky top bar mid-page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"/tmp/portal-messages-{name}.png", full_page=True)


def _deliver(message: Message, status: str = "delivered") -> None:
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    if message.carrier_message_id:
        pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status=status)


def test_the_send_page_counts_live_and_sends_a_test_message(acme, live_server, browser):
    from playwright.sync_api import expect

    tenant, owner = acme
    base = live_server.url
    page, problems = open_page(browser)
    sign_in(page, base, owner.email)

    # The empty log points to the send page.
    page.click("nav.sidebar >> text=Messages")
    expect(page.locator("main")).to_contain_text("No messages yet")
    shot(page, "empty")
    page.click("main >> text=send a test message")
    page.wait_for_url("**/portal/messages/send/")

    counter = page.locator("[data-quote-counter]")
    panel = page.locator("[data-quote-panel]")
    # With JavaScript the panel is live, so the no-JS "Check length" button is hidden.
    expect(page.locator("[data-quote-check]")).to_be_hidden()
    shot(page, "send-empty")

    # When the member types, the counter follows: 160 GSM-7 characters fit one SMS, 161 need two.
    page.fill("input[name=to]", "+1 415 555 0123")
    page.fill("input[name=sender]", "Acme")
    text = page.locator("textarea[name=text]")
    text.fill("a" * 160)
    expect(counter).to_have_text("160 characters · 1 segment · GSM-7")
    text.press("End")
    text.press_sequentially("a")
    expect(counter).to_have_text("161 characters · 2 segments · GSM-7")
    expect(panel.locator("[data-quote-segments]")).to_have_text("2")

    # One emoji switches the whole message to UCS-2, and the panel points at it.
    page.keyboard.insert_text("😀")
    expect(counter).to_have_text("162 characters · 3 segments · UCS-2")
    expect(panel.locator("mark", has_text="😀").first).to_be_visible()
    expect(panel).to_contain_text("U+1F600")
    shot(page, "send-ucs2")

    # Curly quotes and a dash are smart-encoded: still GSM-7.
    text.fill("Hi Ana, it’s “ready” — pick it up at desk 4 before 6 pm.")
    expect(counter).to_contain_text("1 segment · GSM-7")
    expect(panel).to_contain_text("Smart encoding keeps it GSM-7")
    expect(panel.locator("[data-quote-sent]")).to_have_text('Hi Ana, it\'s "ready" - pick it up at desk 4 before 6 pm.')
    page.uncheck("input[name=smart_encoding]")
    expect(counter).to_contain_text("UCS-2")
    page.check("input[name=smart_encoding]")
    expect(counter).to_contain_text("GSM-7")
    shot(page, "send-smart")
    page.locator(".quote-card").screenshot(path="/tmp/portal-messages-quote-panel.png")

    # A template: choosing it offers its placeholders as variables, and the quote renders it.
    page.check("input[name=content][value=template]")
    expect(text).to_be_hidden()
    page.select_option("select[name=template]", "login_code")
    variables = page.locator("textarea[name=variables]")
    expect(variables).to_have_value("code=\nminutes=")
    expect(counter).to_have_text("43 characters · 1 segment · GSM-7")  # the body with empty values
    variables.fill("code=493021")
    expect(panel).to_contain_text("No value for the template variable 'minutes'")
    variables.fill("code=493021\nminutes=10")
    expect(counter).to_have_text("51 characters · 1 segment · GSM-7")
    shot(page, "send-template")

    # Sending lands on the detail page of a test-mode message.
    page.click("main form.send-form button[value=send]")
    page.wait_for_url("**/portal/messages/msg_*/")
    message = Message.unscoped.get(tenant=tenant)
    assert (message.mode, message.text, message.status) == ("test", "Your Acme code is 493021. It expires in 10 "
                                                            "minutes.", Status.QUEUED)
    assert message.public_id in page.url
    expect(page.locator("h1")).to_contain_text("Message to +14155550123")

    # The simulator's outcomes, run here (the live server has no worker), fill the timeline and the log.
    _deliver(message)
    for ending in ("0001", "0002", "0003"):
        _deliver(accept.message_send(tenant=tenant, api_key=None, mode="test", to=f"+1415555{ending}",
                                       sender="Acme", text=f"Order {ending} is on its way", client_reference=ending))
    opted_in(tenant, "+442071838750")  # marketing needs the opt-in (the consent check)
    accept.message_send(tenant=tenant, api_key=None, mode="test", to="+442071838750", sender="Acme",
                          text="Reminder: your appointment is tomorrow at 10:00.", message_type="marketing",
                          scheduled_at=timezone.now() + timedelta(days=1))
    page.reload()
    expect(page.locator(".timeline-item")).to_have_count(4)
    shot(page, "detail")

    page.click("nav.sidebar >> text=Messages")
    expect(page.locator("table.table-messages tbody tr")).to_have_count(5)
    shot(page, "log")
    page.fill("input[name=q]", "415 555 0002")
    page.click("form.filter-bar button[type=submit]")
    expect(page.locator("table.table-messages tbody tr")).to_have_count(1)
    page.click("table.table-messages a")
    expect(page.locator("main")).to_contain_text("carrier_rejected")
    shot(page, "detail-failed")

    # The scheduled one can be canceled.
    page.click("nav.sidebar >> text=Messages")
    page.select_option("select[name=status]", "scheduled")
    page.click("form.filter-bar button[type=submit]")
    page.click("table.table-messages a")
    page.click("text=Cancel message")
    expect(page.locator(".flash-stack")).to_contain_text("will not be sent")
    assert Message.unscoped.get(tenant=tenant, status=Status.CANCELED).to == "+442071838750"

    page.click("nav.sidebar >> text=Templates")
    expect(page.locator("main table")).to_contain_text("login_code")
    shot(page, "templates")
    page.click("main >> text=Edit")
    page.fill("textarea[name=body]", "Your code is ${code-1}")
    page.click("main form button[type=submit]")
    expect(page.locator(".field-error")).to_contain_text("Invalid placeholder name 'code-1'")
    shot(page, "template-error")

    page.click("nav.sidebar >> text=Dashboard")
    expect(page.locator("main")).to_contain_text("Messages today")
    shot(page, "dashboard")

    assert problems == []


def test_without_javascript_check_length_renders_the_same_panel(acme, live_server, browser):
    from playwright.sync_api import expect

    tenant, owner = acme
    page, problems = open_page(browser, javascript=False)
    sign_in(page, live_server.url, owner.email)
    page.goto(f"{live_server.url}/portal/messages/send/")

    # The template fields are hidden by CSS alone until "Use a stored template" is chosen.
    expect(page.locator("select[name=template]")).to_be_hidden()
    page.check("input[name=content][value=template]")
    expect(page.locator("select[name=template]")).to_be_visible()
    page.check("input[name=content][value=text]")

    page.fill("textarea[name=text]", "Café “Olé” opens at 9 😀")
    page.click("button[value=check]")

    expect(page.locator("[data-quote-counter]")).to_have_text("23 characters · 1 segment · UCS-2")
    expect(page.locator("[data-quote-panel] mark", has_text="😀").first).to_be_visible()
    expect(page.locator("textarea[name=text]")).to_have_value("Café “Olé” opens at 9 😀")
    assert not page.locator(".field-error").count()  # no recipient yet, and that is fine for a check
    assert not Message.unscoped.filter(tenant=tenant).exists()
    shot(page, "send-nojs")
    assert problems == []
