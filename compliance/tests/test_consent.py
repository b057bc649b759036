"""The consent ledger and suppressions (issue 12, sections 1 and 2): STOP through the simulator blocks the next
send from that sender and START lets it through again; STOPALL and the tenant scope; manual suppressions; marketing
needs an opt-in; the quote refuses the same; one query for a batch, none for a tenant with an empty ledger."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from accounts.services import SYSTEM
from accounts.tests.factories import bearer, make_api_key
from compliance import consent, consent_services
from compliance.models import ConsentRecord, ConsentScope, Suppression
from compliance.tests.consent_helpers import opted_in
from smsportal.events.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

RECIPIENT = "+14155550111"


@pytest.fixture(autouse=True)
def _no_destination_limit(settings):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""


def _send(api, side, *, sender, to=RECIPIENT, message_type="transactional", text="Your order shipped"):
    return api.post("/v1/messages", {"to": to, "from": sender, "text": text, "message_type": message_type},
                    format="json", **side.auth)


def _inbound(api, side, *, to, text, sender=RECIPIENT):
    response = api.post("/v1/simulator/inbound", {"to": to, "from": sender, "text": text}, format="json", **side.auth)
    assert response.status_code == 201, response.content
    return response.json()


def _numbers(side):
    return side.extra["assignment"].number.number, side.extra["lease"].number.number


def _code(response):
    return response.json()["error"]["code"] if response.status_code >= 400 else response.status_code


# --- Must show: STOP through the simulator's inbound endpoint, then START --------------------------------------


def test_it_blocks_the_next_send_from_the_sender_that_got_stop_and_sends_again_after_start(world, api):
    pooled, leased = _numbers(world.a)
    # given the recipient gets messages from both of A's numbers
    assert _send(api, world.a, sender=leased).status_code == 202
    # when it answers STOP to the leased number through the simulator's inbound endpoint
    _inbound(api, world.a, to=leased, text="STOP")
    # then the next send from that number is refused, nothing stored, and the other number still sends
    refused = _send(api, world.a, sender=leased)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "to"
    assert _code(refused) == "recipient_opted_out"
    assert _send(api, world.a, sender=pooled).status_code == 202
    record = ConsentRecord.unscoped.get(tenant=world.a.tenant, phone=RECIPIENT)
    assert (record.status, record.scope, record.sender, record.source) == ("opted_out", "sender", leased, "keyword")
    # when it answers START, sending from that number works again
    _inbound(api, world.a, to=leased, text="start")
    assert _send(api, world.a, sender=leased).status_code == 202
    # and B, who never heard of the recipient, was never affected
    assert not ConsentRecord.unscoped.filter(tenant=world.b.tenant).exists()


def test_a_stop_to_a_pool_number_opts_out_of_the_pool_and_unstop_back_in(world, api):
    pooled, _ = _numbers(world.a)
    pool = world.a.extra["pool"]
    # when the recipient says STOP to the number that is in the pool "senders"
    _inbound(api, world.a, to=pooled, text="STOP")
    # then the ledger has the sender's and the pool's opt-out, and a send through the pool is refused
    scopes = set(ConsentRecord.unscoped.filter(tenant=world.a.tenant).values_list("scope", "sender", "pool_id"))
    assert scopes == {("sender", pooled, ""), ("pool", "", pool.public_id)}
    assert _code(_send(api, world.a, sender="pool:senders")) == "recipient_opted_out"
    _inbound(api, world.a, to=pooled, text="UNSTOP")
    assert _send(api, world.a, sender="pool:senders").status_code == 202


def test_stopall_opts_out_of_every_sender_and_start_to_one_lets_only_that_one_send(world, api):
    pooled, leased = _numbers(world.a)
    _inbound(api, world.a, to=leased, text="stopall")
    assert [_code(_send(api, world.a, sender=s)) for s in (pooled, leased, "Acme")] == ["recipient_opted_out"] * 3
    # START to the leased number is newer than the tenant-wide STOPALL for that sender only
    _inbound(api, world.a, to=leased, text="START")
    assert [_code(_send(api, world.a, sender=s)) for s in (pooled, leased)] == ["recipient_opted_out", 202]


def test_a_tenant_whose_opt_out_scope_is_tenant_opts_out_everywhere_on_stop(world, api):
    pooled, leased = _numbers(world.a)
    consent_services.consent_settings_set(tenant=world.a.tenant, opt_out_scope="tenant", retention_days=90,
                                          actor=SYSTEM)
    _inbound(api, world.a, to=leased, text="STOP")
    assert ConsentRecord.unscoped.get(tenant=world.a.tenant).scope == "tenant"
    assert _code(_send(api, world.a, sender=pooled)) == "recipient_opted_out"


def test_each_keyword_emits_a_signed_contact_event(world, api):
    _, leased = _numbers(world.a)
    endpoint = world.a.extra["webhook_endpoint"]
    WebhookEndpoint.unscoped.filter(pk=endpoint.pk).update(events=[])  # every event type
    _inbound(api, world.a, to=leased, text="STOP")
    _inbound(api, world.a, to=leased, text="START")
    types = list(WebhookDelivery.unscoped.filter(endpoint=endpoint, event_type__startswith="contact.")
                 .order_by("id").values_list("event_type", flat=True))
    assert types == ["contact.opted_out", "contact.opted_in"]
    delivery = WebhookDelivery.unscoped.filter(endpoint=endpoint, event_type="contact.opted_out").get()
    assert delivery.payload["data"]["phone"] == RECIPIENT and delivery.payload["data"]["scope"] == "sender"


# --- Marketing needs opt-in; OTP and transactional only respect opt-outs ----------------------------------------


def test_marketing_needs_an_opt_in_and_otp_and_transactional_do_not(world, api):
    _, leased = _numbers(world.a)
    # given no record for the recipient: marketing is refused, OTP and transactional go
    refused = _send(api, world.a, sender=leased, message_type="marketing", text="Sale! Reply STOP to opt out")
    assert _code(refused) == "consent_required" and refused.json()["error"]["field"] == "to"
    assert _send(api, world.a, sender=leased, message_type="otp", text="Code 123456").status_code == 202
    assert _send(api, world.a, sender=leased).status_code == 202
    # when the recipient opted in (API), marketing goes
    opted_in(world.a.tenant, RECIPIENT)
    assert _send(api, world.a, sender=leased, message_type="marketing",
                 text="Sale! Reply STOP to opt out").status_code == 202
    # and after an opt-out for that sender, OTP is refused too
    consent_services.consent_record(tenant=world.a.tenant, phone=RECIPIENT, status="opted_out", source="api",
                                    scope="sender", sender=leased)
    assert _code(_send(api, world.a, sender=leased, message_type="otp", text="Code 1")) == "recipient_opted_out"


def test_the_quote_says_the_same_refusal_and_stores_nothing(world, api):
    _, leased = _numbers(world.a)
    consent_services.suppression_add(tenant=world.a.tenant, phone=RECIPIENT)
    response = api.post("/v1/messages/quote", {"to": RECIPIENT, "from": leased, "text": "hi"}, format="json",
                        **world.a.auth)
    body = response.json()
    assert response.status_code == 422 and body["error"]["code"] == "recipient_opted_out", body
    marketing = api.post("/v1/messages/quote", {"to": "+14155550112", "from": leased, "text": "Sale",
                                                "message_type": "marketing"}, format="json", **world.a.auth)
    assert _code(marketing) == "consent_required"


# --- Cost: one query for a batch, none for an empty ledger --------------------------------------------------------


def _batch(api, side, recipients, sender):
    return api.post("/v1/messages/batch", {"messages": [{"to": to, "from": sender, "text": "hi"} for to in recipients]},
                    format="json", **side.auth)


def test_it_reads_a_batchs_records_in_one_query_and_nothing_for_an_empty_ledger(world):
    from messaging import accept

    _, leased = _numbers(world.a)
    recipients = [f"+1415555{n:04d}" for n in range(200, 230)]
    items = [{"to": to, "sender": leased, "text": "hi"} for to in recipients]
    # given A's ledger is empty: the check asks the database nothing (after the first, cached answer)
    consent.ledger_empty(world.a.tenant.pk)
    with CaptureQueriesContext(connection) as empty:
        accept.messages_quote(tenant=world.a.tenant, api_key=world.a.api_key, items=items)
    assert not [q for q in empty.captured_queries if "compliance_consent" in q["sql"] or "suppression" in q["sql"]]
    # given records for some of them: one query for all 30 (both tables in one UNION), once the process knows the
    # tenant has records (the first request after a write asks that too)
    consent_services.suppression_add(tenant=world.a.tenant, phone=recipients[3])
    opted_in(world.a.tenant, recipients[4])
    accept.messages_quote(tenant=world.a.tenant, api_key=world.a.api_key, items=items[:1])
    with CaptureQueriesContext(connection) as some:
        drafts = accept.messages_quote(tenant=world.a.tenant, api_key=world.a.api_key, items=items)
    reads = [q for q in some.captured_queries if "compliance_consentrecord" in q["sql"]]
    assert len(reads) == 1 and "UNION" in reads[0]["sql"]
    assert [d.error.code if d.error else None for d in drafts].count("recipient_opted_out") == 1


def test_a_write_in_this_process_clears_the_empty_answer_at_once(world, api):
    _, leased = _numbers(world.a)
    assert consent.ledger_empty(world.a.tenant.pk)
    consent_services.suppression_add(tenant=world.a.tenant, phone=RECIPIENT)
    assert _code(_send(api, world.a, sender=leased)) == "recipient_opted_out"


# --- API: /v1/consents -----------------------------------------------------------------------------------------


def test_the_api_records_a_consent_with_its_proof_and_lists_it_filtered(world, api):
    body = {"phone": RECIPIENT, "status": "opted_in", "source": "checkout", "consent_text": "Offers by SMS",
            "consent_version": "v3", "ip": "203.0.113.7", "user_agent": "Firefox", "page_url": "https://shop.example/c"}
    created = api.post("/v1/consents", body, format="json", **world.a.auth)
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["id"].startswith("cns_") and (data["status"], data["scope"], data["source"]) == (
        "opted_in", "tenant", "checkout")
    assert data["proof"]["text"] == "Offers by SMS" and data["proof"]["ip"] == "203.0.113.7"
    api.post("/v1/consents", {"phone": "+14155550112", "status": "opted_out"}, format="json", **world.a.auth)
    listed = api.get("/v1/consents", {"status": "opted_in"}, **world.a.auth).json()
    assert [r["phone"] for r in listed["results"]] == [RECIPIENT]
    assert [r["phone"] for r in api.get("/v1/consents", {"phone": "+14155550112"}, **world.a.auth).json()["results"]] \
        == ["+14155550112"]
    assert AuditEvent.unscoped.filter(tenant=world.a.tenant, action="consent.opted_in").exists()
    # B sees none of it
    assert api.get("/v1/consents", **world.b.auth).json()["results"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"phone": "12345", "status": "opted_in"}, "phone"),
    ({"phone": RECIPIENT, "status": "maybe"}, "status"),
    ({"phone": RECIPIENT, "status": "opted_in", "scope": "sender"}, "sender"),
    ({"phone": RECIPIENT, "status": "opted_in", "scope": "pool"}, "pool"),
    ({"phone": RECIPIENT, "status": "opted_in", "source": "erasure"}, "source"),
])
def test_the_api_refuses_an_invalid_consent_by_field(world, api, body, field):
    response = api.post("/v1/consents", body, format="json", **world.a.auth)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error.get("field") == field or field in str(error), error
    assert not ConsentRecord.unscoped.filter(tenant=world.a.tenant).exists()


def test_the_consent_routes_need_the_compliance_scope(world, api):
    _, secret = make_api_key(world.a.tenant, scopes=["messages:send"])
    for method, path in (("get", "/v1/consents"), ("post", "/v1/consents"), ("get", "/v1/suppressions"),
                         ("post", "/v1/suppressions"), ("post", "/v1/erasure-requests")):
        response = getattr(api, method)(path, {"phone": RECIPIENT}, format="json", **bearer(secret))
        assert response.status_code == 403, (method, path, response.content)


def test_the_consent_list_pages_by_cursor(world, api):
    for n in range(5):
        opted_in(world.a.tenant, f"+1415555{n + 300:04d}")
    first = api.get("/v1/consents", {"limit": 2}, **world.a.auth).json()
    second = api.get(first["next"], **world.a.auth).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 2
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


# --- API: /v1/suppressions -------------------------------------------------------------------------------------


def test_a_manual_suppression_blocks_until_deleted_and_both_are_audited(world, api):
    pooled, leased = _numbers(world.a)
    created = api.post("/v1/suppressions", {"phone": RECIPIENT, "scope": "sender", "sender": leased,
                                            "reason": "asked by phone"}, format="json", **world.a.auth)
    assert created.status_code == 201, created.content
    again = api.post("/v1/suppressions", {"phone": RECIPIENT, "scope": "sender", "sender": leased}, format="json",
                     **world.a.auth)
    assert again.json()["id"] == created.json()["id"]
    assert _code(_send(api, world.a, sender=leased)) == "recipient_opted_out"
    assert _send(api, world.a, sender=pooled).status_code == 202
    assert [s["id"] for s in api.get("/v1/suppressions", **world.a.auth).json()["results"]] == [created.json()["id"]]
    # B can neither see nor delete it
    assert api.get("/v1/suppressions", **world.b.auth).json()["results"] == []
    assert api.delete(f"/v1/suppressions/{created.json()['id']}", **world.b.auth).status_code == 404
    assert api.delete(f"/v1/suppressions/{created.json()['id']}", **world.a.auth).status_code == 204
    assert _send(api, world.a, sender=leased).status_code == 202
    actions = set(AuditEvent.unscoped.filter(tenant=world.a.tenant, action__startswith="suppression.")
                  .values_list("action", flat=True))
    assert actions == {"suppression.added", "suppression.deleted"}
    assert api.delete(f"/v1/suppressions/{created.json()['id']}", **world.a.auth).status_code == 404


# --- CSV import / export (services; the portal pages call them) ------------------------------------------------


def test_a_consent_csv_imports_all_or_nothing_and_exports_what_it_imported(world):
    good = "phone,status,scope,consent_text\n+14155550111,opted_in,tenant,Offers\n+14155550112,opted_out,tenant,\n"
    result = consent_services.consents_import(tenant=world.a.tenant, data=good, actor=SYSTEM)
    assert (result.created, result.errors) == (2, [])
    bad = "phone,status\n+14155550113,opted_in\nnot-a-number,opted_in\n"
    result = consent_services.consents_import(tenant=world.a.tenant, data=bad, actor=SYSTEM)
    assert result.created == 0 and result.errors and "row 3" in result.errors[0]
    assert ConsentRecord.unscoped.filter(tenant=world.a.tenant).count() == 2
    exported = consent_services.consents_csv(ConsentRecord.unscoped.filter(tenant=world.a.tenant).order_by("id"))
    lines = exported.strip().splitlines()
    assert lines[0].startswith("phone,status,scope") and lines[1].startswith("+14155550111,opted_in,tenant")


def test_a_csv_cell_that_a_spreadsheet_would_run_is_quoted(world):
    consent_services.consent_record(tenant=world.a.tenant, phone=RECIPIENT, status="opted_in", source="api",
                                    proof=consent_services.Proof(text="=HYPERLINK(\"http://x\")"))
    exported = consent_services.consents_csv(ConsentRecord.unscoped.filter(tenant=world.a.tenant))
    assert "'=HYPERLINK" in exported


def test_a_suppression_csv_imports(world):
    data = "phone,scope,reason\n+14155550111,tenant,complaint\n"
    assert consent_services.suppressions_import(tenant=world.a.tenant, data=data, actor=SYSTEM).created == 1
    assert Suppression.unscoped.get(tenant=world.a.tenant).source == "import"


def test_the_latest_record_among_the_applicable_scopes_wins():
    from datetime import UTC, datetime

    def entry(status, scope, at, sender="", pool=""):
        return consent.Entry("h", status, scope, sender, pool, datetime(2030, 1, 1, at, tzinfo=UTC), at)

    out_tenant, in_sender = entry("opted_out", "tenant", 1), entry("opted_in", "sender", 2, sender="+1")
    assert consent.state_for([out_tenant, in_sender], sender="+1") == "opted_in"
    assert consent.state_for([out_tenant, in_sender], sender="+2") == "opted_out"
    assert consent.state_for([entry("opted_out", "pool", 3, pool="pool_x")], sender="+1") is None
    assert consent.state_for([entry("opted_out", "pool", 3, pool="pool_x")], sender="+1", pool_id="pool_x") == "opted_out"
    assert consent.state_for([in_sender, entry("suppressed", ConsentScope.TENANT, 0)], sender="+1") == "suppressed"


def test_a_stop_cancels_the_waiting_messages_it_covers(world, api):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.models import Message

    pooled, leased = _numbers(world.a)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    waiting = [api.post("/v1/messages", {"to": RECIPIENT, "from": sender, "text": "Tomorrow", "scheduled_at": later},
                        format="json", **world.a.auth).json()["id"] for sender in (leased, pooled)]
    # when the recipient says STOP to the leased number
    _inbound(api, world.a, to=leased, text="STOP")
    # then the scheduled message from that number is canceled, the other one still waits
    statuses = dict(Message.unscoped.filter(public_id__in=waiting).values_list("public_id", "status"))
    assert [statuses[w] for w in waiting] == ["canceled", "scheduled"]
    canceled = Message.unscoped.get(public_id=waiting[0])
    assert canceled.error_code == "recipient_opted_out"


def test_the_lists_cost_the_same_queries_for_two_rows_or_twenty(world, api):
    def queries(path):
        with CaptureQueriesContext(connection) as seen:
            assert api.get(path, **world.a.auth).status_code == 200
        return len(seen.captured_queries)

    for n in range(2):
        opted_in(world.a.tenant, f"+1415555{n + 400:04d}")
        consent_services.suppression_add(tenant=world.a.tenant, phone=f"+1415555{n + 400:04d}")
    queries("/v1/consents")  # warm-up: a first request does one-time work (caches), not the list's cost
    few = queries("/v1/consents"), queries("/v1/suppressions")
    for n in range(2, 20):
        opted_in(world.a.tenant, f"+1415555{n + 400:04d}")
        consent_services.suppression_add(tenant=world.a.tenant, phone=f"+1415555{n + 400:04d}")
    assert (queries("/v1/consents"), queries("/v1/suppressions")) == few
