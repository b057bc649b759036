"""The low-balance alert: `balance.low` (signed) and an email to the owners and billing members, once per crossing
of the threshold by any debit (hold, adjustment, rental), re-armed by a top-up back above it; exactly once under
concurrency; the send path asks nothing more for it."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from numbers import services as numbers
from numbers.tests.factories import shared_senders, stock

import pytest
import time_machine
from django.core import mail
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from accounts.models import User
from accounts.roles import Role
from accounts.services.audit import SYSTEM
from accounts.tests.factories import login_verified
from billing import services
from billing.charges import number_charges_run
from billing.models import Balance, NumberPrice
from billing.selectors import balances_unbalanced
from billing.tests.test_ledger import _credit, _send, live  # noqa: F401
from smsportal.events import services as webhooks
from smsportal.events.models import DeliveryStatus, WebhookDelivery
from smsportal.events.tests.webhook_helpers import endpoint_for
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """A US and a Canadian shared sender number: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _threshold(tenant, amount: str) -> None:
    Balance.unscoped.filter(tenant=tenant).update(low_balance_threshold=Decimal(amount))


def _alerts() -> list[WebhookDelivery]:
    return list(WebhookDelivery.unscoped.filter(event_type="balance.low").order_by("id"))


def _alert_mails() -> list:
    return [m for m in mail.outbox if "balance is low" in m.subject]


def test_a_send_that_crosses_the_threshold_alerts_once_signed_and_by_email(live, api, receiver,  # noqa: F811
                                                                            django_capture_on_commit_callbacks):
    # given 1.00 EUR, a threshold of 0.975 and an endpoint subscribed to balance.low (sends cost 0.01)
    _credit(live.a.tenant, "1.00")
    _threshold(live.a.tenant, "0.975")
    _, secret = endpoint_for(live.a.tenant, receiver.url("/hook"), events=["balance.low"])
    # when four live sends take available to 0.99, 0.98, 0.97 (below), 0.96
    with django_capture_on_commit_callbacks(execute=True):
        codes = [_send(api, live.a.extra["live"], to=f"+1415555010{i}").status_code for i in range(4)]
    assert codes == [202] * 4
    # then one event, on the third (to the endpoint, and the world's endpoint for every event), and one email
    # to the owner and the billing member only
    assert len({d.subject for d in _alerts()}) == 1
    (delivery,) = [d for d in _alerts() if d.url == receiver.url("/hook")]
    assert delivery.tenant_id == live.a.tenant.pk
    assert delivery.payload["data"] == {"available": "0.9700", "threshold": "0.9750", "balance": "1.0000",
                                        "reserved": "0.0300", "credit_limit": "0.0000", "currency": "EUR"}
    (email,) = _alert_mails()
    assert sorted(email.to) == sorted([live.a.members[Role.OWNER].email, live.a.members[Role.BILLING].email])
    assert "0.9700 EUR" in email.subject and "0.9750 EUR" in email.body
    assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_alerted_at is not None
    # and the event goes out signed with the endpoint's secret
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.requests
    event = Webhook(secret).verify(request.body, request.headers)
    assert (event["type"], event["data"]["available"]) == ("balance.low", "0.9700")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_top_up_above_the_threshold_re_arms_it_and_one_below_does_not(live, api,  # noqa: F811
                                                                         django_capture_on_commit_callbacks):
    _credit(live.a.tenant, "0.02")
    _threshold(live.a.tenant, "0.015")
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(api, live.a.extra["live"]).status_code == 202  # 0.01 left: alert 1
        _credit(live.a.tenant, "0.001")  # 0.011, still below: no re-arm
        assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 202  # 0.001: nothing
        assert len({d.subject for d in _alerts()}) == 1
        _credit(live.a.tenant, "0.02")  # 0.021: above, re-armed
        assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_alerted_at is None
        assert _send(api, live.a.extra["live"], to="+14155550102").status_code == 202  # 0.011: alert 2
    assert len(_alert_mails()) == 2
    assert balances_unbalanced() == []


def test_an_adjustment_and_a_rental_charge_alert_too(live, django_capture_on_commit_callbacks):  # noqa: F811
    # given 1.00 and a threshold of 0.50
    tenant = live.a.tenant
    _credit(tenant, "1.00")
    _threshold(tenant, "0.50")
    with django_capture_on_commit_callbacks(execute=True):
        # when an adjustment takes it to 0.40: an alert
        services.balance_credit(tenant=tenant, amount=Decimal("-0.60"), reason="correction", actor=SYSTEM)
    assert len(_alert_mails()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        # and after a top-up (re-armed), a night's rental charges take it below again: one more
        _credit(tenant, "0.20")
        NumberPrice.unscoped.create(number_type="mobile", country="US", monthly_rental=Decimal("3.10"),
                                    lease_per_hour=Decimal("0.36"), currency="EUR", effective_from="2025-01-01")
        stock(2)
        with time_machine.travel(datetime(2026, 3, 1, 14, tzinfo=UTC), tick=False):
            numbers.number_assign(tenant=tenant, country="US")
        numbers.numbers_usage_record_open(now=datetime(2026, 3, 4, 0, 5, tzinfo=UTC))
        assert number_charges_run(now=datetime(2026, 3, 4, 0, 30, tzinfo=UTC))["charged"] == 3  # 0.60 -> 0.30
    assert len(_alert_mails()) == 2 and len(mail.outbox) == 2
    assert Balance.unscoped.get(tenant=tenant).balance == Decimal("0.30")


def test_no_threshold_no_alert_and_a_release_does_not_re_arm(live, api,  # noqa: F811
                                                              django_capture_on_commit_callbacks):
    from messaging import lifecycle
    from messaging.models import Message, Status
    _credit(live.a.tenant, "0.02")
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(api, live.a.extra["live"]).status_code == 202
    assert not _alerts() and not _alert_mails()
    with django_capture_on_commit_callbacks(execute=True):
        _threshold(live.a.tenant, "0.015")
        assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 202  # 0.00: alert
        message = Message.unscoped.filter(tenant=live.a.tenant, billed=True).first()
        lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")  # back to 0.01
        assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_alerted_at is not None
    assert len({d.subject for d in _alerts()}) == 1 and len(_alert_mails()) == 1


def test_a_new_threshold_in_admin_re_arms_the_alert(live, client):  # noqa: F811
    # given an alert raised for the current threshold
    _credit(live.a.tenant, "1.00")
    Balance.unscoped.filter(tenant=live.a.tenant).update(low_balance_threshold=Decimal("2"),
                                                         low_balance_alerted_at=datetime(2026, 1, 1, tzinfo=UTC))
    balance = Balance.unscoped.get(tenant=live.a.tenant)
    login_verified(client, User.objects.create_superuser(email="manager@smsportal.example.com", password="pw-12345"))
    # when an account manager sets a new one
    url = reverse("admin:billing_balance_change", args=[balance.pk])
    assert "low_balance_threshold" in client.get(url).content.decode()
    response = client.post(url, {"credit_limit": "0", "daily_spend_cap": "", "low_balance_threshold": "0.50",
                                "tax_rate": "0", "billing_name": "", "billing_address": "", "tax_id": ""})
    # then it is saved and armed again
    assert response.status_code == 302, response.content
    balance.refresh_from_db()
    assert (balance.low_balance_threshold, balance.low_balance_alerted_at) == (Decimal("0.50"), None)


@pytest.mark.postgres
def test_with_a_threshold_not_crossed_a_live_send_is_still_its_one_statement(live, api, settings):  # noqa: F811
    settings.API_KEY_CACHE_SECONDS, settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS = 60, 60
    settings.MESSAGE_HANDOFF, settings.BILLING_PRICE_CACHE_SECONDS = "dispatcher", 60
    _credit(live.a.tenant, "1")
    _threshold(live.a.tenant, "0.10")
    assert _send(api, live.a.extra["live"], to="+14155550190").status_code == 202  # warm the caches
    with CaptureQueriesContext(connection) as queries:
        assert _send(api, live.a.extra["live"], to="+14155550192").status_code == 202
    # then the send is its one statement, the hold's CTEs in it (messaging/accept/store.py): nothing more
    sql = [query["sql"] for query in queries.captured_queries]
    assert len(sql) == 1 and "billing_balance" in sql[0] and "messaging_message" in sql[0], sql
    # and the send that crosses it takes the marker in that statement, then records the alert
    _threshold(live.a.tenant, "0.975")
    with CaptureQueriesContext(connection) as crossing:
        assert _send(api, live.a.extra["live"], to="+14155550193").status_code == 202
    assert "low_balance_alerted_at" in crossing.captured_queries[0]["sql"]
    assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_alerted_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_40_concurrent_sends_crossing_the_threshold_alert_exactly_once(live):  # noqa: F811
    # given 1.00, a threshold of 0.95 (crossed by the sixth send) and an endpoint for balance.low
    _credit(live.a.tenant, "1.00")
    _threshold(live.a.tenant, "0.95")
    endpoint_for(live.a.tenant, "https://example.com/hook", events=["balance.low"])
    auth, start = live.a.extra["live"], threading.Barrier(40)

    def send(i: int) -> int:
        try:
            start.wait(timeout=30)
            return _send(APIClient(), auth, to=f"+1415556{i:04d}").status_code
        finally:
            connections.close_all()

    # when 40 sends race
    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(send, range(40)))
    # then all went through, and exactly one alert was raised
    assert codes.count(202) == 40
    assert len({d.subject for d in _alerts()}) == 1
    assert {d.payload["data"]["available"] for d in _alerts()} == {"0.9400"}
    assert balances_unbalanced() == []


# --- the tenant's own threshold (portal: Billing > Settings, billing.manage) ---------------------------------

SETTINGS_URL = "/portal/billing/settings/"


@pytest.mark.parametrize("role", [Role.OWNER, Role.BILLING])
def test_owner_and_billing_set_and_clear_the_threshold_in_the_portal_audited_and_re_armed(live, client, role):  # noqa: F811
    from accounts.models import AuditEvent

    # given an alert already raised for an old threshold
    _credit(live.a.tenant, "1.00")
    Balance.unscoped.filter(tenant=live.a.tenant).update(low_balance_threshold=Decimal("2"),
                                                         low_balance_alerted_at=datetime(2026, 1, 1, tzinfo=UTC))
    login_verified(client, live.a.members[role])
    page = client.get(SETTINGS_URL).content.decode()
    assert 'name="low_balance_threshold"' in page and 'value="2.000000"' in page
    assert 'href="/portal/billing/settings/"' in client.get("/portal/billing/").content.decode()  # the tab
    # when they set a new one
    response = client.post(SETTINGS_URL, {"low_balance_threshold": "0.75"})
    assert response.status_code == 302 and response["Location"] == SETTINGS_URL
    balance = Balance.unscoped.get(tenant=live.a.tenant)
    assert (balance.low_balance_threshold, balance.low_balance_alerted_at) == (Decimal("0.75"), None)
    event = AuditEvent.unscoped.get(tenant=live.a.tenant, action="balance.low_balance_threshold_changed")
    assert event.changes["low_balance_threshold"] == ["2.000000", "0.75"]
    assert event.actor_id == live.a.members[role].pk
    assert "Below 0.75" in client.get(SETTINGS_URL).content.decode()
    # the same value again changes nothing, and is not audited again
    client.post(SETTINGS_URL, {"low_balance_threshold": "0.750"})
    assert AuditEvent.unscoped.filter(action="balance.low_balance_threshold_changed").count() == 1
    # when they clear it: no alert any more
    assert client.post(SETTINGS_URL, {"low_balance_threshold": ""}).status_code == 302
    assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_threshold is None
    assert AuditEvent.unscoped.filter(action="balance.low_balance_threshold_changed").count() == 2
    assert ">Off<" in client.get(SETTINGS_URL).content.decode()


@pytest.mark.parametrize("value,error", [("-1", "greater than or equal to 0"), ("lots", "Enter a number"),
                                         ("0.0000001", "more than 6 decimal places"),
                                         ("1e20", "more than 18 digits")])
def test_a_bad_threshold_shows_its_error_in_the_form_and_changes_nothing(live, client, value, error):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    _threshold(live.a.tenant, "0.50")
    login_verified(client, live.a.owner)
    response = client.post(SETTINGS_URL, {"low_balance_threshold": value})
    assert response.status_code == 200
    assert error in response.content.decode() and 'class="field-error"' in response.content.decode()
    assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_threshold == Decimal("0.50")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DEVELOPER, Role.VIEWER])
def test_other_roles_cannot_see_or_set_the_threshold(live, client, role):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    login_verified(client, live.a.members[role])
    assert client.get(SETTINGS_URL).status_code == 403
    assert client.post(SETTINGS_URL, {"low_balance_threshold": "5"}).status_code == 403
    assert Balance.unscoped.get(tenant=live.a.tenant).low_balance_threshold is None
    if role == Role.ADMIN:  # billing.view without billing.manage: the section, not its Settings tab
        assert 'href="/portal/billing/settings/"' not in client.get("/portal/billing/").content.decode()


def test_the_service_refuses_a_negative_threshold(live):  # noqa: F811
    with pytest.raises(services.InvalidThreshold):
        services.balance_low_threshold_set(tenant=live.a.tenant, threshold=Decimal("-0.01"), actor=SYSTEM)


def test_a_threshold_set_in_the_portal_alerts_at_the_next_send_below_it(live, api, client,  # noqa: F811
                                                                         django_capture_on_commit_callbacks):
    _credit(live.a.tenant, "1.00")
    login_verified(client, live.a.owner)
    client.post(SETTINGS_URL, {"low_balance_threshold": "0.995"})
    with django_capture_on_commit_callbacks(execute=True):
        _send(api, live.a.extra["live"])
    assert len(_alert_mails()) == 1
