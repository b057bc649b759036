"""Retention and erasure (issue 12, section 9) and the consent invariant (Must show): no message was accepted for
a number after its opt-out in the scope that applied, checked both ways."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO
from numbers.models import InboundMessage

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import SYSTEM
from compliance import consent, consent_services, retention
from compliance.models import ConsentRecord, ErasureRequest, Suppression
from compliance.tests.consent_helpers import opted_in
from messaging.models import Message

pytestmark = pytest.mark.django_db

RECIPIENT = "+14155550111"


@pytest.fixture(autouse=True)
def _no_destination_limit(settings):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""


def _send(api, side, *, sender, to=RECIPIENT, text="Your order shipped"):
    return api.post("/v1/messages", {"to": to, "from": sender, "text": text}, format="json", **side.auth)


def _invariants() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("compliance_invariants", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_the_invariant_finds_no_row_when_stop_was_respected(world, api):
    leased = world.a.extra["lease"].number.number
    assert _send(api, world.a, sender=leased).status_code == 202  # before the STOP: fine
    api.post("/v1/simulator/inbound", {"to": leased, "from": RECIPIENT, "text": "STOP"}, format="json", **world.a.auth)
    assert _send(api, world.a, sender=leased).status_code == 422  # refused, not stored
    api.post("/v1/simulator/inbound", {"to": leased, "from": RECIPIENT, "text": "START"}, format="json", **world.a.auth)
    assert _send(api, world.a, sender=leased).status_code == 202  # after START: fine
    assert _invariants() == (0, "compliance invariants: 0 rows\n")


def test_the_invariant_finds_a_message_stored_after_an_opt_out_in_its_scope(world, api):
    leased = world.a.extra["lease"].number.number
    pooled = world.a.extra["assignment"].number.number
    sent = _send(api, world.a, sender=leased).json()["id"]
    other = _send(api, world.a, sender=pooled).json()["id"]
    # given an opt-out for the leased sender dated before those messages, written past the services (as a broken
    # check, or a lost write, would leave it: the services would also have canceled the waiting messages)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ConsentRecord.unscoped.create(tenant=world.a.tenant, phone=RECIPIENT, phone_hash=consent.phone_hash(RECIPIENT),
                                  status="opted_out", scope="sender", sender=leased, source="api",
                                  created_at=an_hour_ago)
    code, out = _invariants()
    # then the message from that sender is a row, the one from the other sender is not
    assert code == 1 and sent in out and other not in out
    # and a suppression (tenant-wide) made earlier catches both
    Suppression.unscoped.create(tenant=world.a.tenant, phone=RECIPIENT, phone_hash=consent.phone_hash(RECIPIENT),
                                source="api", created_at=an_hour_ago)
    code, out = _invariants()
    assert code == 1 and sent in out and other in out


def test_retention_redacts_old_bodies_and_keeps_billing_metadata(world, api):
    leased = world.a.extra["lease"].number.number
    old = Message.unscoped.get(public_id=_send(api, world.a, sender=leased).json()["id"])
    new = Message.unscoped.get(public_id=_send(api, world.a, sender=leased).json()["id"])
    Message.unscoped.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))
    inbound = world.a.extra["inbound"]
    InboundMessage.unscoped.filter(pk=inbound.pk).update(received_at=timezone.now() - timedelta(days=91))
    # B keeps bodies for 365 days: its 91-day-old message stays
    consent_services.consent_settings_set(tenant=world.b.tenant, opt_out_scope="sender", retention_days=365,
                                          actor=SYSTEM)
    b_message = world.b.extra["message"]
    Message.unscoped.filter(pk=b_message.pk).update(created_at=timezone.now() - timedelta(days=91))
    done = retention.retention_redact()
    assert done["messages"] >= 1 and done["inbound"] >= 1
    old.refresh_from_db(), new.refresh_from_db(), inbound.refresh_from_db(), b_message.refresh_from_db()
    assert (old.text, old.to, old.segments, old.encoding) == ("", RECIPIENT, new.segments, new.encoding)
    assert new.text == "Your order shipped" and inbound.text == "" and inbound.code == ""
    assert b_message.text != ""
    assert retention.retention_redact() == {"messages": 0, "inbound": 0}  # twice: nothing more


def test_retention_is_a_beat_job():
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="compliance.tasks.retention_redact_task", enabled=True).exists()


def test_an_erasure_redacts_the_number_and_keeps_its_opt_out_by_hash(world, api):
    leased = world.a.extra["lease"].number.number
    opted_in(world.a.tenant, RECIPIENT)
    sent = _send(api, world.a, sender=leased).json()["id"]
    api.post("/v1/simulator/inbound", {"to": leased, "from": RECIPIENT, "text": "Thanks!"}, format="json",
             **world.a.auth)
    # when A asks to erase the number
    response = api.post("/v1/erasure-requests", {"phone": RECIPIENT}, format="json", **world.a.auth)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("era_") and body["counts"]["messages"] == 1 and body["counts"]["inbound"] == 1
    # then bodies and proof are gone, the number is in no consent record, only its hash is kept
    erased = Message.unscoped.get(public_id=sent)
    assert (erased.text, erased.to) == ("", consent.number_masked(RECIPIENT)) and erased.to != RECIPIENT
    assert not InboundMessage.unscoped.filter(tenant=world.a.tenant, sender=RECIPIENT).exists()
    assert InboundMessage.unscoped.filter(tenant=world.a.tenant, sender=consent.number_masked(RECIPIENT),
                                          text="").count() == 1
    assert not ConsentRecord.unscoped.filter(tenant=world.a.tenant, phone=RECIPIENT).exists()
    record = ConsentRecord.unscoped.get(tenant=world.a.tenant)
    assert (record.consent_text, record.phone, record.erased_at is not None) == ("", "", True)
    suppression = Suppression.unscoped.get(tenant=world.a.tenant)
    assert (suppression.phone, suppression.source, suppression.scope) == ("", "erasure", "tenant")
    assert RECIPIENT not in str(ErasureRequest.unscoped.get(tenant=world.a.tenant).__dict__)
    assert AuditEvent.unscoped.filter(tenant=world.a.tenant, action="erasure.completed").exists()
    # and the opt-out survives: a send to the number is refused, matched on the hash
    refused = _send(api, world.a, sender=leased)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "recipient_opted_out"
    # and the invariant holds
    assert _invariants()[0] == 0
    # B's data is untouched
    assert Message.unscoped.get(pk=world.b.extra["message"].pk).text != ""


def test_the_invariant_matches_an_erased_number_by_hash(world, api):
    leased = world.a.extra["lease"].number.number
    retention.erasure_request_create(tenant=world.a.tenant, phone=RECIPIENT, actor=SYSTEM)
    Suppression.unscoped.filter(tenant=world.a.tenant).update(created_at=timezone.now() - timedelta(hours=1))
    # a message stored anyway (as a broken check would) is found, though no entry names the number
    Message.unscoped.filter(pk=world.a.extra["message"].pk).update(to=RECIPIENT, sender=leased)
    code, out = _invariants()
    assert code == 1 and world.a.extra["message"].public_id in out


def test_an_erased_number_keeps_only_its_leading_digits():
    assert consent.number_masked("+447781123456") == "+447781000000"
    assert consent.number_masked("+14155550123") == "+14155500000"
    assert consent.number_masked("+3581234") == "+3580000"  # short numbers keep fewer (never the last four)
