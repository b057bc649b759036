"""The portal in a real browser: sign in, enrol 2FA, create an API key, use it on the API.

Headless Debian Chromium through Playwright against pytest-django's live server;
console errors and CSP violations fail the test.
"""
import base64
import json
import os
import shutil
import urllib.request

import pytest
from django_otp.oath import TOTP

from accounts import services
from accounts.tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def totp_now(secret: str) -> str:
    key = base64.b32decode(secret.replace(" ", ""))
    return f"{TOTP(key).token():06d}"


@pytest.fixture
def browser_page(live_server):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM guard would refuse our queries.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    problems: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.set_default_timeout(15_000)
            yield page, problems
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_sign_in_enrol_2fa_create_a_key_and_call_the_api(transactional_db, live_server, browser_page):
    page, problems = browser_page
    tenant, owner = services.tenant_create(slug="acme", name="Acme Logistics", owner_email="owner@acme.example.com",
                                           password=PASSWORD)
    services.tenant_set_require_2fa(tenant=tenant, required=True, actor=services.SYSTEM)

    # Sign in through the form: the tenant requires 2FA, so enrolment comes next.
    page.goto(f"{live_server.url}/portal/")
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/2fa/setup/")

    secret = page.inner_text("#totp-secret").strip()
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml")
    page.fill("input[name=token]", totp_now(secret))
    page.click("main form.form button[type=submit]")
    codes = page.locator("#backup-codes li").all_inner_texts()
    assert len(codes) == 10

    page.click("text=I have saved them")
    page.wait_for_url(f"{live_server.url}/portal/")
    assert "Acme Logistics" in page.inner_text("h1")
    page.screenshot(path="/tmp/portal-dashboard.png", full_page=True)

    # Create a key in the browser; the secret is on the page once.
    page.click("nav.sidebar >> text=API keys")
    page.wait_for_url("**/portal/api-keys/")
    page.screenshot(path="/tmp/portal-api-keys-empty.png", full_page=True)
    page.click("main >> text=Create API key")
    page.fill("input[name=name]", "Checkout service")
    page.check("input[name=scopes][value='messages:send']")
    page.check("input[name=scopes][value='admin']")
    page.screenshot(path="/tmp/portal-api-key-create.png", full_page=True)
    page.click("main form.form button[type=submit]")
    secret_key = page.inner_text("#new-api-key-secret").strip()
    assert secret_key.startswith("sk_test_")
    assert page.locator("button[data-copy='#new-api-key-secret']").is_visible()
    page.screenshot(path="/tmp/portal-api-key-created.png", full_page=True)

    page.click("text=I have stored the key")
    page.wait_for_url("**/portal/api-keys/")
    assert "Checkout service" in page.inner_text("table")
    assert secret_key not in page.content()
    page.screenshot(path="/tmp/portal-api-keys.png", full_page=True)

    me_url = f"{live_server.url}/v1/me"
    request = urllib.request.Request(me_url, headers={"Authorization": f"Bearer {secret_key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback live server
        body = json.load(response)
    assert body["tenant"]["slug"] == "acme"

    # The menus work (no JS needed, but no errors with it either).
    page.click("details.tenant-switcher > summary")
    assert page.locator("details.tenant-switcher .menu-panel").is_visible()
    page.keyboard.press("Escape")

    assert problems == []
