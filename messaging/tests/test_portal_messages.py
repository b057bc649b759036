"""Portal messaging pages: the message log and detail, sending a test message with its quote, templates."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from numbers.tests.factories import shared_senders
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from accounts.tests.factories import MembershipFactory, TenantFactory, UserFactory, login_verified
from messaging import accept, pipeline, selectors, services
from messaging.models import Message, MessageEvent, MessageTemplate, Status
from messaging.tests import history

pytestmark = pytest.mark.django_db

LOG = reverse("portal:messages")
SEND = reverse("portal:message-send")
QUOTE = reverse("portal:message-quote")
TEMPLATES = reverse("portal:templates")
TEMPLATE_CREATE = reverse("portal:template-create")


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def detail_url(message) -> str:
    return reverse("portal:message-detail", args=[message.public_id])


def cancel_url(message) -> str:
    return reverse("portal:message-cancel", args=[message.public_id])


def send_form(**overrides) -> dict:
    return {"to": "+14155550199", "region": "", "sender": "Alpha", "message_type": "transactional",
            "content": "text", "text": "Your code is 123456", "template": "", "variables": "",
            "scheduled_at": "", "smart_encoding": "on", "action": "send", **overrides}


def field_errors(response, field: str) -> list[str]:
    return response.context["form"].errors.get(field, [])


def send(tenant, *, to="+14155550123", **fields):
    fields.setdefault("text", "Hello")
    return accept.message_send(tenant=tenant, api_key=None, to=to, sender="Alpha", **fields)


# --- every page -------------------------------------------------------------------------------


def test_each_page_renders_for_a_verified_member(world, client):
    # given A's developer, signed in with a second factor
    login_verified(client, world.a.members[Role.DEVELOPER])
    message, template = world.a.extra["message"], world.a.extra["template"]
    pages = {
        LOG: message.public_id,
        detail_url(message): "Hello from alpha",
        SEND: "carrier simulator",
        TEMPLATES: "Your code is",
        TEMPLATE_CREATE: "New template",
        reverse("portal:template-edit", args=[template.public_id]): template.name,
        reverse("portal:template-delete", args=[template.public_id]): f"Delete “{template.name}”?",
        reverse("portal:dashboard"): "Messages today",
    }
    for path, expected in pages.items():
        # when each page is opened; then it renders with what it is about
        response = client.get(path)
        assert response.status_code == 200, path
        assert expected in response.content.decode(), path


def test_the_side_navigation_offers_messaging_by_permission(world, client):
    for role in Role.values:
        login_verified(client, world.a.members[role])
        html = client.get(reverse("portal:dashboard")).content.decode()
        nav = html.split('<nav class="sidebar"', 1)[1].split("</nav>", 1)[0]
        can_send = role in (Role.OWNER, Role.ADMIN, Role.DEVELOPER)
        assert (f'href="{LOG}"' in nav, f'href="{TEMPLATES}"' in nav, f'href="{SEND}"' in nav) == (
            True, True, can_send), role


# --- the message log --------------------------------------------------------------------------


def test_the_log_lists_only_this_tenants_messages(world, client, django_assert_max_num_queries):
    # given a few more messages in A, and B's own
    tenant = world.a.tenant
    for ending in ("0001", "0002", "0003"):
        send(tenant, to=f"+1415555{ending}")
    login_verified(client, world.a.owner)

    # when the log is opened; then one page costs a bounded number of queries
    with django_assert_max_num_queries(14):
        response = client.get(LOG)

    html = response.content.decode()
    listed = [m.public_id for m in response.context["page"].object_list]
    assert listed == list(Message.unscoped.filter(tenant=tenant).order_by("-created_at", "-id")
                          .values_list("public_id", flat=True))
    assert len(listed) == 4
    assert world.b.extra["message"].public_id not in html
    assert detail_url(world.a.extra["message"]) in html and "+14155550003" in html


def test_the_log_searches_by_number_id_and_reference(world, client):
    tenant = world.a.tenant
    other = send(tenant, to="+442071838750", client_reference="order-77")
    first = world.a.extra["message"]  # to +14155550123, reference alpha-ref-1
    login_verified(client, world.a.owner)

    def found(**params) -> list[str]:
        return [m.public_id for m in client.get(LOG, params).context["page"].object_list]

    assert found(q="(415) 555-0123") == [first.public_id]  # digits of a national format
    assert found(q="4420") == [other.public_id]
    assert found(q=other.public_id) == [other.public_id]
    assert found(q="order-77") == [other.public_id]
    assert found(q="alpha-ref-1") == [first.public_id]
    assert found(q=world.b.extra["message"].public_id) == []  # B's id finds nothing in A
    assert found(q="order") == []  # references match exactly


def test_the_log_filters_by_status_type_and_day(world, client):
    tenant = world.a.tenant
    otp = send(tenant, message_type="otp")
    services.message_cancel(tenant=tenant, message=otp)
    old = send(tenant)
    Message.unscoped.filter(pk=old.pk).update(created_at=datetime(2024, 3, 5, 23, 59, tzinfo=UTC))
    login_verified(client, world.a.owner)

    def found(**params) -> set[str]:
        return {m.public_id for m in client.get(LOG, params).context["page"].object_list}

    assert found(status="canceled") == {otp.public_id}
    assert found(message_type="otp") == {otp.public_id}
    assert found(created_from="2024-03-05", created_to="2024-03-05") == {old.public_id}
    assert found(created_to="2024-03-04") == set()
    assert old.public_id not in found(created_from="2024-03-06")
    # A value that does not parse is ignored rather than refused.
    assert len(found(status="nonsense", created_from="yesterday")) == 3
    page = client.get(LOG, {"status": "canceled"}).content.decode()
    assert "No messages match" not in page and 'value="canceled" selected' in page


def test_the_log_pages_by_fifty_and_keeps_the_filters_in_page_links(world, client):
    tenant = world.a.tenant
    template = world.a.extra["message"]
    Message.unscoped.bulk_create([
        Message(tenant=tenant, to="+14155550111", sender="Alpha", text=f"bulk {n}", encoding="GSM-7", segments=1,
                characters=6, expires_at=template.expires_at, status=Status.DELIVERED)
        for n in range(55)
    ])
    login_verified(client, world.a.owner)

    first = client.get(LOG, {"status": "delivered"})
    second = client.get(LOG, {"status": "delivered", "page": 2})

    assert len(first.context["page"].object_list) == 50 and len(second.context["page"].object_list) == 5
    assert "?status=delivered&amp;page=2" in first.content.decode()
    assert "55 messages" in first.content.decode()


def test_an_empty_log_links_to_the_send_page(db, client):
    tenant = TenantFactory()
    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.DEVELOPER)
    login_verified(client, user, tenant=tenant)

    html = client.get(LOG).content.decode()

    assert "No messages yet" in html and f'href="{SEND}"' in html


# --- the detail page --------------------------------------------------------------------------


def test_the_detail_shows_the_fields_the_error_and_the_timeline(world, client):
    # given a message the simulator rejects (number ending 0002)
    message = send(world.a.tenant, to="+14155550002", client_reference="inv-9", metadata={"order": "A-17"})
    pipeline.message_dispatch(message_id=message.pk)
    login_verified(client, world.a.members[Role.VIEWER])

    response = client.get(detail_url(message))

    html = response.content.decode()
    assert response.status_code == 200
    assert [e.status for e in response.context["message"].timeline] == ["queued", "sending", "failed"]
    for text in ("+14155550002", "inv-9", "A-17", "carrier_rejected", "The carrier rejected the destination.",
                 "0x0B", "accepted", "Worker", "API", "Failed", "Test"):
        assert text in html, text
    assert cancel_url(message) not in html  # failed: nothing to cancel


def test_cancel_works_for_a_scheduled_message(world, client):
    # given a message scheduled for tomorrow
    message = send(world.a.tenant, scheduled_at=timezone.now() + timedelta(days=1))
    login_verified(client, world.a.members[Role.DEVELOPER])
    assert cancel_url(message) in client.get(detail_url(message)).content.decode()

    # when the member cancels it
    response = client.post(cancel_url(message), follow=True)

    # then it is canceled, with an event, and the page no longer offers to cancel
    message.refresh_from_db()
    assert response.redirect_chain == [(detail_url(message), 302)]
    assert message.status == Status.CANCELED
    event = MessageEvent.unscoped.filter(message=message).order_by("sequence").last()
    assert (event.status, event.source) == ("canceled", "api")
    html = response.content.decode()
    assert "will not be sent" in html and cancel_url(message) not in html


def test_cancelling_a_finished_message_explains_why_not(world, client):
    message = world.a.extra["message"]
    services.message_cancel(tenant=world.a.tenant, message=message)
    login_verified(client, world.a.owner)

    response = client.post(cancel_url(message), follow=True)

    assert response.status_code == 200
    assert "only a scheduled or queued message can be canceled" in response.content.decode()
    assert history.statuses(message) == ["queued", "canceled"]


# --- role gates and tenancy ---------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.BILLING, Role.VIEWER])
def test_billing_and_viewer_can_look_but_not_send(world, client, role):
    login_verified(client, world.a.members[role])
    message, template = world.a.extra["message"], world.a.extra["template"]
    before = Message.unscoped.count(), MessageTemplate.unscoped.count()

    # they may look
    for path in (LOG, detail_url(message), TEMPLATES):
        assert client.get(path).status_code == 200, path
    # and may not write
    refused = [
        client.get(SEND), client.post(SEND, send_form()), client.post(QUOTE, send_form()),
        client.post(cancel_url(message)), client.get(TEMPLATE_CREATE),
        client.post(TEMPLATE_CREATE, {"name": "x", "body": "y", "message_type": "otp"}),
        client.post(reverse("portal:template-edit", args=[template.public_id]), {"name": "x", "body": "y"}),
        client.post(reverse("portal:template-delete", args=[template.public_id])),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert (Message.unscoped.count(), MessageTemplate.unscoped.count()) == before
    message.refresh_from_db()
    assert message.status == Status.QUEUED
    # and the pages offer no write controls
    html = client.get(detail_url(message)).content.decode() + client.get(TEMPLATES).content.decode()
    assert cancel_url(message) not in html and TEMPLATE_CREATE not in html and SEND not in html


def test_another_tenants_messages_and_templates_are_not_found(world, client):
    login_verified(client, world.a.owner, tenant=world.a.tenant)
    message, template = world.b.extra["message"], world.b.extra["template"]

    answers = [
        client.get(detail_url(message)),
        client.post(cancel_url(message)),
        client.get(reverse("portal:template-edit", args=[template.public_id])),
        client.post(reverse("portal:template-edit", args=[template.public_id]),
                    {"name": "stolen", "body": "x", "message_type": "otp"}),
        client.get(reverse("portal:template-delete", args=[template.public_id])),
        client.post(reverse("portal:template-delete", args=[template.public_id])),
    ]

    assert [r.status_code for r in answers] == [404] * len(answers)
    message.refresh_from_db()
    template.refresh_from_db()
    assert message.status == Status.QUEUED and template.name == "bravo_otp"


def test_a_suspended_tenant_reads_its_messages_but_sends_nothing(world, client):
    from accounts import services as accounts_services

    accounts_services.tenant_set_status(tenant=world.a.tenant, status="suspended", actor=accounts_services.SYSTEM)
    login_verified(client, world.a.owner)
    message = world.a.extra["message"]

    refused = [client.post(SEND, send_form()), client.post(cancel_url(message)),
               client.post(TEMPLATE_CREATE, {"name": "x", "body": "y", "message_type": "otp"})]

    assert [(r.status_code, r["Location"]) for r in refused] == [
        (302, SEND), (302, cancel_url(message)), (302, TEMPLATE_CREATE)]
    assert Message.unscoped.filter(tenant=world.a.tenant).count() == 1
    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert client.get(LOG).status_code == 200
    assert cancel_url(message) not in client.get(detail_url(message)).content.decode()
    assert 'value="send"' not in client.get(SEND).content.decode()  # no button that can only be refused


# --- sending a test message -----------------------------------------------------------------


def test_sending_through_the_form_creates_a_test_message_and_enqueues_it(world, client,
                                                                          django_capture_on_commit_callbacks):
    login_verified(client, world.a.members[Role.DEVELOPER])

    with mock.patch("messaging.tasks.message_dispatch_task.apply_async") as dispatch:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(SEND, send_form(to="415 555 0177", region="us", text="Hi “there”"))

    message = Message.unscoped.exclude(pk=world.a.extra["message"].pk).get(tenant=world.a.tenant)
    assert response.status_code == 302 and response["Location"] == detail_url(message)
    assert (message.mode, message.api_key, message.status) == ("test", None, Status.QUEUED)
    assert (message.to, message.text, message.encoding) == ("+14155550177", 'Hi "there"', "GSM-7")
    # the US takes no alphanumeric sender: it goes from the shared US number, and says so
    assert message.sender_substituted == {"requested": "Alpha", "used": message.sender}
    assert message.sender.startswith("+1")
    assert history.statuses(message) == ["queued"]
    dispatch.assert_called_once_with((message.pk,), queue="transactional")


def test_sending_a_stored_template_with_variables(world, client):
    login_verified(client, world.a.owner)

    response = client.post(SEND, send_form(content="template", text="ignored", template="alpha_otp",
                                           variables="code = 987654\n\n", scheduled_at="2099-01-01T00:00"))

    assert response.status_code == 200  # 2099 is more than 30 days ahead
    assert field_errors(response, "scheduled_at") == ["scheduled_at can be at most 30 days ahead."]
    tomorrow = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(SEND, send_form(content="template", text="ignored", template="alpha_otp",
                                           variables="code=987654", scheduled_at=tomorrow))
    message = Message.unscoped.get(tenant=world.a.tenant, template_ref="alpha_otp")
    assert response["Location"] == detail_url(message)
    assert (message.text, message.status, message.mode) == ("Your code is 987654", Status.SCHEDULED, "test")


@pytest.mark.parametrize(("data", "field", "error"), [
    ({"to": "12345"}, "to", "'12345' is not a valid phone number; use E.164 (+15551234567) or give `region`."),
    ({"sender": "+1"}, "sender", "'+1' is not a valid phone number."),
    ({"sender": "Bad{sender}"}, "sender", "The sender must be an alphanumeric ID (1-11 characters, at least one "
                                          "letter) or an E.164 number."),
    ({"content": "template", "template": "alpha_otp", "variables": ""}, "variables",
     "No value for the template variable 'code'."),
    ({"content": "template", "template": "alpha_otp", "variables": "code"}, "variables",
     "Line 1: write name=value, e.g. code=123456."),
    ({"content": "template", "template": "bravo_otp"}, "template",
     "Select a valid choice. bravo_otp is not one of the available choices."),
    ({"content": "template", "template": ""}, "template", "Choose a template."),
    ({"text": ""}, "text", "Write the message."),
    ({"text": "x" * 1531}, "text", "The message needs 11 segments; this account allows at most 10."),
])
def test_errors_are_shown_next_to_their_fields_and_nothing_is_stored(world, client, data, field, error):
    login_verified(client, world.a.owner)
    before = Message.unscoped.count()

    response = client.post(SEND, send_form(**data))

    assert response.status_code == 200
    assert field_errors(response, field) == [error]
    html = response.content.decode()
    # the message sits in the field's block, right under its input
    block = re.search(rf'<div class="field [^"]*has-error">\s*<label for="id_{field}".*?</div>', html, re.S)
    assert block and "field-error" in block.group(0), field
    assert Message.unscoped.count() == before


def test_check_length_without_javascript_renders_the_quote_and_sends_nothing(world, client):
    login_verified(client, world.a.owner)
    before = Message.unscoped.count()

    response = client.post(SEND, send_form(to="", text="a" * 161, action="check"))

    html = response.content.decode()
    assert response.status_code == 200 and Message.unscoped.count() == before
    assert response.context["panel"]["quote"].segment_count == 2
    assert "161 characters · 2 segments · GSM-7" in html
    assert "field-error" not in html  # an empty `to` is not an error while only checking the length
    assert 'value=""' in html and "a" * 161 in html  # the form keeps what was typed


def test_a_template_link_starts_the_send_form_on_that_template(world, client):
    login_verified(client, world.a.owner)

    form = client.get(SEND, {"template": "alpha_otp"}).context["form"]
    other = client.get(SEND, {"template": "bravo_otp"}).context["form"]

    assert (form["content"].value(), form["template"].value()) == ("template", "alpha_otp")
    assert other["template"].value() in ("", None)
    assert '"alpha_otp": ["code"]' in form.fields["template"].widget.attrs["data-placeholders"]


# --- the quote endpoint ---------------------------------------------------------------------


def quote(client, **data):
    return client.post(QUOTE, {"content": "text", "smart_encoding": "on", **data})


def test_the_quote_counts_a_gsm_text(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])

    short = quote(client, text="Your code is 123456", to="not a number")
    long = quote(client, text="a" * 161)
    escaped = quote(client, text="{" * 80)  # each "{" is an escape pair: 160 septets

    assert short.status_code == 200
    body = short.json()
    assert (body["encoding"], body["segments"], body["characters"], body["units"]) == ("GSM-7", 1, 19, 19)
    assert body["ucs2_characters"] == [] and body["smart_encoded"] is False
    assert body["summary"] == "19 characters · 1 segment · GSM-7" and "Left in this segment" in body["html"]
    assert (long.json()["segments"], long.json()["units"]) == (2, 161)
    assert (escaped.json()["segments"], escaped.json()["units"], escaped.json()["characters"]) == (1, 160, 80)
    assert not Message.unscoped.filter(text__startswith="Your code").exclude(pk=world.a.extra["message"].pk).exists()


def test_the_quote_smart_encodes_curly_quotes(world, client):
    login_verified(client, world.a.owner)
    text = "Say “hi” — it’s free"

    smart = quote(client, text=text).json()
    plain = client.post(QUOTE, {"content": "text", "text": text}).json()  # checkbox unchecked

    assert (smart["encoding"], smart["segments"], smart["smart_encoded"]) == ("GSM-7", 1, True)
    assert smart["text"] == "Say \"hi\" - it's free"
    assert smart["segments_without_smart_encoding"] == 1
    assert [(c["character"], c["position"], c["codepoint"]) for c in smart["ucs2_characters"]] == [
        ("“", 4, "U+201C"), ("”", 7, "U+201D"), ("—", 9, "U+2014"), ("’", 13, "U+2019")]
    assert '<mark title="U+201C at position 4">“</mark>' in smart["html"]
    assert (plain["encoding"], plain["smart_encoded"], plain["units"]) == ("UCS-2", False, 20)
    # 75 characters with one curly quote: two UCS-2 segments, one GSM-7 segment once smart-encoded
    saved = quote(client, text="‘" + "a" * 74).json()
    assert (saved["segments"], saved["segments_without_smart_encoding"]) == (1, 2)
    assert "saves 1 segment" in saved["html"]


def test_the_quote_of_an_emoji_text_is_ucs2(world, client):
    login_verified(client, world.a.owner)

    body = quote(client, text="Hi 😀 “there”").json()

    assert (body["encoding"], body["segments"], body["smart_encoded"]) == ("UCS-2", 1, False)
    assert (body["characters"], body["units"]) == (12, 13)  # the emoji is a surrogate pair
    assert [c["character"] for c in body["ucs2_characters"]] == ["😀", "“", "”"]
    assert body["summary"] == "12 characters · 1 segment · UCS-2"


def test_the_quote_renders_templates_and_reports_their_errors(world, client):
    login_verified(client, world.a.owner)

    rendered = quote(client, content="template", template="alpha_otp", variables="code=12345").json()
    missing = quote(client, content="template", template="alpha_otp")
    empty = quote(client, text="")

    assert (rendered["characters"], rendered["text"]) == (18, "Your code is 12345")
    assert missing.status_code == 200  # half-typed input is a normal state of the live check
    assert missing.json()["error"] == {"code": "template_variable_missing", "field": "variables.code",
                                       "message": "No value for the template variable 'code'."}
    assert "No value for the template variable" in missing.json()["html"]
    assert empty.status_code == 200 and empty.json()["summary"] == ""
    assert "Write a message to see its length" in empty.json()["html"]


def test_the_quote_warns_beyond_the_accounts_segment_limit(world, client):
    login_verified(client, world.a.owner)

    body = quote(client, text="x" * 1531).json()

    assert body["segments"] == 11 and body["max_segments"] == 10
    assert "this account allows at most 10" in body["html"]


def test_the_quote_needs_post_and_a_csrf_token(world, client):
    from django.test import Client

    login_verified(client, world.a.owner)
    strict = login_verified(Client(enforce_csrf_checks=True), world.a.owner)

    assert client.get(QUOTE).status_code == 405
    assert strict.post(QUOTE, {"content": "text", "text": "hi"}).status_code == 403


# --- templates ----------------------------------------------------------------------------


def test_templates_list_shows_placeholders(world, client):
    services.template_create(tenant=world.a.tenant, name="shipping", body="Hi ${name}, parcel ${id} ships ${name}")
    login_verified(client, world.a.members[Role.VIEWER])

    html = client.get(TEMPLATES).content.decode()

    assert '<span class="placeholder">${name}</span>' in html
    assert '<span class="chip">name</span><span class="chip">id</span>' in html
    assert "bravo_otp" not in html


def test_template_create_edit_and_delete(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])

    created = client.post(TEMPLATE_CREATE, {"name": "welcome", "body": "Hi ${name}", "message_type": "marketing"})
    template = MessageTemplate.unscoped.get(tenant=world.a.tenant, name="welcome")
    edit = reverse("portal:template-edit", args=[template.public_id])
    edited = client.post(edit, {"name": "welcome.v2", "body": "Hello ${first_name}", "message_type": "marketing",
                                "description": "New users"})
    template.refresh_from_db()

    assert created["Location"] == TEMPLATES and edited["Location"] == TEMPLATES
    assert (template.name, template.body, template.message_type, template.description) == (
        "welcome.v2", "Hello ${first_name}", "marketing", "New users")
    assert client.get(edit).context["form"]["body"].value() == "Hello ${first_name}"

    deleted = client.post(reverse("portal:template-delete", args=[template.public_id]), follow=True)
    assert not MessageTemplate.unscoped.filter(pk=template.pk).exists()
    assert "was deleted" in deleted.content.decode()


@pytest.mark.parametrize(("data", "field", "error"), [
    ({"body": "Hi ${first name}"}, "body", "Invalid placeholder name 'first name' at position 3: use 1-64 letters, "
                                           "digits or underscores, not starting with a digit."),
    ({"body": "Hi ${name"}, "body", "Unclosed placeholder: '${' at position 3 has no '}'."),
    ({"name": "has space"}, "name", "A template name uses letters, digits, '_', '-' and '.' only (1-100 characters)."),
    ({"name": "alpha_otp"}, "name", "A template with this name already exists."),
])
def test_template_errors_are_shown_next_to_their_fields(world, client, data, field, error):
    login_verified(client, world.a.owner)
    template = world.a.extra["template"]
    other = services.template_create(tenant=world.a.tenant, name="other", body="x")
    before = list(MessageTemplate.unscoped.order_by("pk").values())
    form = {"name": "fresh", "body": "Hi ${name}", "message_type": "otp", **data}

    created = client.post(TEMPLATE_CREATE, form)
    edited = client.post(reverse("portal:template-edit", args=[other.public_id]), form)

    for response in (created, edited):
        assert response.status_code == 200
        assert field_errors(response, field) == [error]
        assert 'class="field-error"' in response.content.decode()
    assert list(MessageTemplate.unscoped.order_by("pk").values()) == before
    assert template.name == "alpha_otp"
    assert "Edit “other”" in edited.content.decode()  # the page names the stored template, not the refused name


# --- dashboard ----------------------------------------------------------------------------


def test_todays_message_counts(world):
    tenant = world.a.tenant
    delivered, failed = send(tenant), send(tenant, to="+14155550002")
    pipeline.message_dispatch(message_id=failed.pk)
    pipeline.message_dispatch(message_id=delivered.pk)
    delivered.refresh_from_db()
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=delivered.carrier_message_id, status="delivered")
    Message.unscoped.filter(pk=world.a.extra["message"].pk).update(created_at=timezone.now() - timedelta(days=2))

    stats = selectors.message_stats_today(tenant=tenant)
    tomorrow = selectors.message_stats_today(tenant=tenant, now=timezone.now() + timedelta(days=1))

    assert stats == {"total": 2, "delivered": 1, "not_delivered": 1, "pending": 0, "delivered_rate": 50}
    assert tomorrow["total"] == 0 and tomorrow["delivered_rate"] is None
    assert selectors.message_stats_today(tenant=world.b.tenant)["total"] == 1
