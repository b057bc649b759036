"""Sender IDs (issue 12 section 3): registration (API, portal), the review (admin: audited, email, event), and the
send pipeline's sender check: sender_not_registered, sender substitution, sender_not_supported."""
from __future__ import annotations

from datetime import timedelta
from numbers.models import NumberType
from numbers.pools import pool_create
from numbers.services import number_assign
from numbers.tests.factories import shared_senders, stock

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.services.audit import SYSTEM, Actor
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import PASSWORD, login_verified, make_api_key
from compliance import sender_ids
from compliance.errors import SenderIdNotPending
from compliance.models import SenderId, SenderIdDocument
from messaging import accept
from messaging.models import Message
from smsportal.events.models import WebhookDelivery, WebhookEndpoint
from smsportal.tenancy import tenant_context

pytestmark = pytest.mark.django_db

URL, QUOTE, SENDER_IDS = "/v1/messages", "/v1/messages/quote", "/v1/sender-ids"
US, CA, IN, GB = "+14155550123", "+14165550123", "+919812345678", "+447911123456"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def india(world):
    """India enabled for tenant A (it takes only registered alphanumeric sender IDs)."""
    from compliance.models import GeoPermission

    with tenant_context(world.a.tenant):
        GeoPermission.objects.update_or_create(tenant=world.a.tenant, country="IN",
                                               defaults={"enabled": True, "approved_at": timezone.now()})
    return world


def _send(api, world, to, sender="YourBrand", url=URL, **fields):
    return api.post(url, {"to": to, "from": sender, "text": "Your code is 123456", "message_type": "otp", **fields},
                    format="json", **world.a.auth)


def _register(tenant, value="YourBrand", countries=("IN",), **fields) -> SenderId:
    with tenant_context(tenant):
        return sender_ids.sender_id_register(tenant=tenant, value=value, countries=list(countries),
                                             use_case="Sign-in codes", actor=SYSTEM, **fields)


def _review(sender_id, *, approve=True, reason="Letter checked", expires_at=None) -> SenderId:
    return sender_ids.sender_id_review(sender_id_pk=sender_id.pk, approve=approve, reason=reason, actor=SYSTEM,
                                       expires_at=expires_at)


# --- Must show: sender not registered --------------------------------------------------------------------------


def test_it_refuses_an_unregistered_sender_to_a_country_that_requires_registration(india, api):
    # given India, which takes only registered alphanumeric senders, and no registration of YourBrand
    before = Message.unscoped.count()
    # when A sends from YourBrand to an Indian number, and quotes it
    sent, quoted = _send(api, india, IN), _send(api, india, IN, url=QUOTE)
    # then both are 422 sender_not_registered on `from`, and nothing is stored
    assert_error(sent, 422, "sender_not_registered", field="from")
    assert_error(quoted, 422, "sender_not_registered", field="from")
    assert "India (IN)" in sent.json()["error"]["message"]
    assert Message.unscoped.count() == before
    # and a pending registration does not change that; an approved one does
    registration = _register(india.a.tenant)
    assert_error(_send(api, india, IN), 422, "sender_not_registered", field="from")
    _review(registration)
    accepted = _send(api, india, IN)
    assert accepted.status_code == 202, accepted.json()
    assert accepted.json()["from"] == "YourBrand" and accepted.json()["sender_substituted"] is None


def test_an_approval_is_per_country_per_tenant_and_ends_when_it_expires(india, api):
    _review(_register(india.a.tenant, countries=["SG"]))  # another country
    _review(_register(india.b.tenant, countries=["IN"]))  # another tenant
    assert_error(_send(api, india, IN), 422, "sender_not_registered", field="from")
    expiring = _review(_register(india.a.tenant, value="yourbrand"), expires_at=timezone.now() + timedelta(days=1))
    assert _send(api, india, IN).status_code == 202  # any case, as operators compare it
    SenderId.unscoped.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    sender_ids.sender_ids_cache_clear()  # (a save through the ORM clears it; .update() does not)
    assert_error(_send(api, india, IN), 422, "sender_not_registered", field="from")
    shown = api.get(f"{SENDER_IDS}/{expiring.public_id}", **india.a.auth).json()
    assert shown["status"] == "expired"


def test_numbers_and_countries_that_allow_alphanumeric_senders_are_not_looked_at(world, api):
    answer = _send(api, world, GB)
    assert answer.status_code == 202, answer.json()
    assert answer.json()["from"] == "YourBrand" and answer.json()["sender_substituted"] is None


# --- Must show: sender substituted (the seed payload) ----------------------------------------------------------


def test_the_seed_payload_to_the_us_goes_from_the_shared_us_number_and_says_so(world, api):
    # given the platform's shared senders of the US and Canada
    shared = shared_senders("US", "CA")
    # when A posts the seed's example payload
    answer = api.post(URL, {"to": US, "from": "YourBrand", "text": "Your OTP is 123456", "message_type": "OTP",
                            "region": "US"}, format="json", **world.a.auth)
    # then it is accepted from the shared US number, with the substitution on the answer, the row and the detail
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    substituted = {"requested": "YourBrand", "used": shared["US"]}
    assert body["from"] == shared["US"] and body["sender_substituted"] == substituted
    row = Message.unscoped.get(public_id=body["id"])
    assert (row.sender, row.sender_substituted) == (shared["US"], substituted)
    assert api.get(f"{URL}/{body['id']}", **world.a.auth).json()["sender_substituted"] == substituted
    # and Canada gets the Canadian one; the quote shows what a send would do
    assert _send(api, world, CA).json()["sender_substituted"]["used"] == shared["CA"]
    assert _send(api, world, US, url=QUOTE).json()["sender_substituted"] == substituted


def test_a_batch_substitutes_each_us_message_and_leaves_the_others(world, api):
    shared = shared_senders("US")
    answer = api.post(f"{URL}/batch", {"defaults": {"from": "YourBrand", "text": "Sale"}, "messages": [
        {"to": US}, {"to": GB}, {"to": "+14155550124"}]}, format="json", **world.a.auth)
    assert answer.status_code == 202, answer.json()
    results = answer.json()["results"]
    assert [r.get("sender_substituted", {}).get("used") for r in results] == [shared["US"], None, shared["US"]]
    senders = dict(Message.unscoped.filter(tenant=world.a.tenant, text="Sale").values_list("to", "sender"))
    assert senders == {US: shared["US"], GB: "YourBrand", "+14155550124": shared["US"]}


def test_the_tenants_fallback_pool_comes_before_the_shared_senders(world, api):
    shared_senders("US")
    # given a pool of A's own US number, named as its fallback pool
    (own,) = stock(1, country="US", type=NumberType.LOCAL, start=700)
    with tenant_context(world.a.tenant):
        number_assign(tenant=world.a.tenant, number=own)
        pool_create(tenant=world.a.tenant, name="fallback", numbers=[own.number], actor=SYSTEM)
        sender_ids.sender_settings_set(tenant=world.a.tenant, fallback_pool="fallback", actor=SYSTEM)
    # then A's US messages go from it; B (no fallback pool) still gets the shared number
    assert _send(api, world, US).json()["sender_substituted"] == {"requested": "YourBrand", "used": own.number}
    b = api.post(URL, {"to": US, "from": "Brand", "text": "hi"}, format="json", **world.b.auth).json()
    assert b["sender_substituted"]["used"] != own.number
    # and a fallback pool without a number of the country falls back to the shared senders too
    assert _send(api, world, "+12025550123").json()["sender_substituted"]["used"] == own.number  # any US number


def test_with_no_number_to_substitute_it_is_sender_not_supported(world, api):
    before = Message.unscoped.count()
    answer = _send(api, world, US)
    assert_error(answer, 422, "sender_not_supported", field="from")
    assert_error(_send(api, world, US, url=QUOTE), 422, "sender_not_supported", field="from")
    assert Message.unscoped.count() == before
    # a number the tenant holds is not looked at
    (own,) = stock(1, country="US", start=710)
    with tenant_context(world.a.tenant):
        number_assign(tenant=world.a.tenant, number=own)
    assert _send(api, world, US, sender=own.number).status_code == 202


def test_a_send_that_needs_no_substitution_asks_nothing_more_when_warm(india, api):
    _review(_register(india.a.tenant))
    with tenant_context(india.a.tenant):
        accept.messages_quote(tenant=india.a.tenant, api_key=None,
                              items=[{"to": IN, "sender": "YourBrand", "text": "hi"}])  # warm
        with CaptureQueriesContext(connection) as queries:
            for _ in range(10):
                assert sender_ids.sender_registered(tenant_id=india.a.tenant.pk, sender="YourBrand", country="IN")
    assert len(queries) == 0


# --- Registration: API ----------------------------------------------------------------------------------------


def test_it_registers_lists_and_shows_a_sender_id_with_a_document(world, api):
    created = api.post(SENDER_IDS, {"value": "YourBrand", "countries": ["in", "SG"], "use_case": "Sign-in codes",
                                    "sample_messages": ["Your code is 123456"]}, format="json", **world.a.auth)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["id"].startswith("sid_") and body["status"] == "pending" and body["countries"] == ["IN", "SG"]
    upload = SimpleUploadedFile("letter.pdf", PDF, content_type="application/pdf")
    document = api.post(f"{SENDER_IDS}/{body['id']}/documents", {"file": upload}, format="multipart",
                        **world.a.auth)
    assert document.status_code == 201, document.json()
    assert (document.json()["name"], document.json()["content_type"]) == ("letter.pdf", "application/pdf")
    shown = api.get(f"{SENDER_IDS}/{body['id']}", **world.a.auth).json()
    assert [d["name"] for d in shown["documents"]] == ["letter.pdf"]
    listing = api.get(SENDER_IDS, {"status": "pending"}, **world.a.auth).json()
    assert [row["id"] for row in listing["results"]] == [body["id"]]
    assert AuditEvent.unscoped.filter(action="sender_id.registered", tenant=world.a.tenant).exists()
    stored = SenderIdDocument.unscoped.get(public_id=document.json()["id"])
    assert stored.file.read() == PDF and "letter" not in stored.file.name  # never the uploader's name as a path


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"value": "AB", "countries": ["IN"], "use_case": "x"}, "invalid_sender_id", "value"),
    ({"value": "123456", "countries": ["IN"], "use_case": "x"}, "invalid_sender_id", "value"),  # not a number held
    ({"value": "TwelveLetter", "countries": ["IN"], "use_case": "x"}, "max_length", "value"),
    ({"value": "Brand", "countries": ["XX"], "use_case": "x"}, "invalid_country", "countries"),
    ({"value": "Brand", "countries": [], "use_case": "x"}, "min_length", "countries"),
    ({"value": "Brand", "countries": ["IN"], "use_case": " "}, "invalid_sender_id", "use_case"),
])
def test_it_refuses_a_bad_registration_with_its_code(world, api, body, code, field):
    answer = api.post(SENDER_IDS, body, format="json", **world.a.auth)
    assert answer.status_code == 400, answer.json()
    error = answer.json()["error"]
    assert error["code"] == code or error.get("field", "").startswith(field), error
    assert not SenderId.unscoped.exists() or not SenderId.unscoped.filter(value=body["value"]).exists()


def test_it_registers_one_of_the_tenants_own_numbers(world, api):
    (own,) = stock(1, country="US", start=720)
    with tenant_context(world.a.tenant):
        number_assign(tenant=world.a.tenant, number=own)
    mine = api.post(SENDER_IDS, {"value": own.number, "countries": ["US"], "use_case": "Alerts"}, format="json",
                    **world.a.auth)
    theirs = api.post(SENDER_IDS, {"value": own.number, "countries": ["US"], "use_case": "Alerts"}, format="json",
                      **world.b.auth)
    assert mine.status_code == 201 and mine.json()["value"] == own.number
    assert_error(theirs, 400, "invalid_sender_id", field="value")


@pytest.mark.parametrize(("name", "content", "size"), [
    ("letter.pdf", b"<html>not a pdf</html>", None),  # the type is read from the content
    ("big.pdf", PDF, 2_000_001),
])
def test_it_refuses_a_document_of_another_type_or_too_large(world, api, settings, name, content, size):
    settings.SENDER_ID_DOCUMENT_MAX_BYTES = 2_000_000
    registration = _register(world.a.tenant)
    data = content if size is None else content + b"0" * (size - len(content))
    answer = api.post(f"{SENDER_IDS}/{registration.public_id}/documents",
                      {"file": SimpleUploadedFile(name, data, content_type="application/pdf")}, format="multipart",
                      **world.a.auth)
    assert answer.status_code in (400, 413), answer.content[:300]
    if answer.status_code == 400:
        assert answer.json()["error"]["code"] == "invalid_document"
    assert not SenderIdDocument.unscoped.exists()


def test_documents_are_refused_after_the_review_and_another_tenant_gets_404(world, api):
    registration = _review(_register(world.a.tenant))
    upload = SimpleUploadedFile("letter.pdf", PDF, content_type="application/pdf")
    assert_error(api.post(f"{SENDER_IDS}/{registration.public_id}/documents", {"file": upload}, format="multipart",
                          **world.a.auth), 409, "not_pending")
    assert_error(api.get(f"{SENDER_IDS}/{registration.public_id}", **world.b.auth), 404, "not_found", field="id")
    assert registration.public_id not in str(api.get(SENDER_IDS, **world.b.auth).json())


def test_it_needs_the_compliance_scope(world, api):
    _key, secret = make_api_key(world.a.tenant, scopes=["messages:send"], name="send only")
    assert api.get(SENDER_IDS, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403
    assert api.post(SENDER_IDS, {"value": "Brand", "countries": ["IN"], "use_case": "x"}, format="json",
                    HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403


# --- Review: admin, audited, email and event ------------------------------------------------------------------


def test_an_account_manager_approves_in_admin_audited_with_an_email_and_the_event(
        client, world, api, django_capture_on_commit_callbacks):
    endpoint = WebhookEndpoint.unscoped.get(tenant=world.a.tenant)
    endpoint.event_types = []  # every event
    endpoint.save()
    registration = _register(world.a.tenant)
    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, staff)
    assert client.get(f"/admin/compliance/senderid/{registration.pk}/change/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # the email goes after commit
        page = client.post(f"/admin/compliance/senderid/{registration.pk}/change/",
                           {"decision": "approve", "decision_reason": "Letter of authorization checked"})
    assert page.status_code == 302, page.content[:2000]
    registration.refresh_from_db()
    assert (registration.status, registration.reviewed_by, registration.reason) == (
        "approved", staff, "Letter of authorization checked")
    audit = AuditEvent.unscoped.get(action="sender_id.approved", tenant=world.a.tenant)
    assert audit.changes["reason"] == "Letter of authorization checked"
    delivery = WebhookDelivery.unscoped.get(tenant=world.a.tenant, event_type="sender_id.reviewed")
    assert delivery.payload["data"]["status"] == "approved"
    assert delivery.payload["data"]["id"] == registration.public_id
    (email,) = mail.outbox
    assert "YourBrand" in email.subject and "approved" in email.subject
    assert "Letter of authorization checked" in email.body
    assert world.a.owner.email in email.to and world.a.members["viewer"].email not in email.to
    # and a decided one cannot be decided again (admin shows it read-only)
    with pytest.raises(SenderIdNotPending):
        _review(registration, approve=False)
    assert client.post(f"/admin/compliance/senderid/{registration.pk}/change/",
                       {"decision": "reject", "decision_reason": "x"}).status_code == 403


def test_a_rejection_keeps_the_sender_refused_with_the_reason_shown(india, api):
    registration = _review(_register(india.a.tenant), approve=False, reason="The letter is not signed")
    shown = api.get(f"{SENDER_IDS}/{registration.public_id}", **india.a.auth).json()
    assert (shown["status"], shown["reason"]) == ("rejected", "The letter is not signed")
    assert AuditEvent.unscoped.filter(action="sender_id.rejected", tenant=india.a.tenant).exists()
    assert_error(_send(api, india, IN), 422, "sender_not_registered", field="from")


def test_the_review_emits_the_event_through_the_outbox_in_its_transaction(world):
    registration = _register(world.a.tenant)
    actor = Actor(user=User.objects.create_superuser(email="m@smsportal.example.com", password=PASSWORD))
    sender_ids.sender_id_review(sender_id_pk=registration.pk, approve=True, reason="ok", actor=actor)
    assert WebhookDelivery.unscoped.filter(tenant=world.a.tenant, event_type="sender_id.reviewed").count() == 1


# --- Portal ---------------------------------------------------------------------------------------------------

PORTAL = "/portal/compliance/sender-ids/"


def test_the_portal_lists_and_registers_with_an_upload(client, world):
    login_verified(client, world.a.owner, tenant=world.a.tenant)
    page = client.get(PORTAL)
    assert page.status_code == 200 and b"Register a sender ID" in page.content
    answer = client.post(PORTAL, {"value": "YourBrand", "countries": "IN, SG", "use_case": "Sign-in codes",
                                  "sample_messages": "Your code is 123456\n",
                                  "documents": SimpleUploadedFile("letter.pdf", PDF, content_type="application/pdf")})
    assert answer.status_code == 302, answer.content[:2000]
    created = SenderId.unscoped.get(tenant=world.a.tenant, value="YourBrand")
    assert created.countries == ["IN", "SG"] and SenderIdDocument.unscoped.filter(sender_id=created).count() == 1
    listing = client.get(PORTAL)
    assert b"data-sender-ids" in listing.content and b"Waiting for review" in listing.content
    bad = client.post(PORTAL, {"value": "YourBrand", "countries": "XX", "use_case": "x"})
    assert bad.status_code == 200 and b"ISO 3166-1" in bad.content


def test_a_viewer_sees_the_page_but_cannot_register(client, world):
    login_verified(client, world.a.members["viewer"], tenant=world.a.tenant)
    page = client.get(PORTAL)
    assert page.status_code == 200 and b"Register a sender ID" not in page.content
    assert client.post(PORTAL, {"value": "YourBrand", "countries": "IN", "use_case": "x"}).status_code == 403
    assert not SenderId.unscoped.filter(tenant=world.a.tenant, value="YourBrand").exists()
