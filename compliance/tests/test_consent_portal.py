"""Portal pages of consents and suppressions: list, record, CSV import and export, lift; viewers only look."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.roles import Role
from accounts.tests.factories import login_verified
from compliance import consent_services
from compliance.models import ConsentRecord, Suppression

pytestmark = pytest.mark.django_db


def _client(world, role=Role.OWNER):
    return login_verified(Client(), world.a.members[role], tenant=world.a.tenant)


def test_the_consents_page_records_imports_and_exports(world):
    client = _client(world)
    assert client.get("/portal/compliance/consents/").status_code == 200
    added = client.post("/portal/compliance/consents/", {"action": "add", "phone": "+14155550111",
                                                         "status": "opted_in", "scope": "tenant",
                                                         "consent_text": "Offers by SMS"})
    assert added.status_code == 302
    record = ConsentRecord.unscoped.get(tenant=world.a.tenant)
    assert (record.source, record.consent_text) == ("portal", "Offers by SMS")
    upload = SimpleUploadedFile("c.csv", b"phone,status\n+14155550112,opted_out\n", content_type="text/csv")
    assert client.post("/portal/compliance/consents/", {"action": "import", "file": upload}).status_code == 302
    assert ConsentRecord.unscoped.filter(tenant=world.a.tenant, source="import").count() == 1
    bad = SimpleUploadedFile("c.csv", b"phone,status\nnope,opted_out\n", content_type="text/csv")
    refused = client.post("/portal/compliance/consents/", {"action": "import", "file": bad})
    assert refused.status_code == 200 and b"row 2" in refused.content
    page = client.get("/portal/compliance/consents/", {"status": "opted_out"})
    assert b"+14155550112" in page.content and b"+14155550111" not in page.content
    export = client.get("/portal/compliance/consents/export.csv")
    assert export["Content-Type"].startswith("text/csv")
    assert b"+14155550111" in export.content and b"+14155550112" in export.content
    # the settings: where a STOP applies and the retention days
    saved = client.post("/portal/compliance/consents/", {"action": "settings", "opt_out_scope": "tenant",
                                                         "retention_days": "30"})
    assert saved.status_code == 302
    settings_row = consent_services.consent_settings_get(tenant=world.a.tenant)
    assert (settings_row.opt_out_scope, settings_row.retention_days) == ("tenant", 30)


def test_the_suppressions_page_adds_imports_exports_and_lifts(world):
    client = _client(world)
    assert client.post("/portal/compliance/suppressions/", {"action": "add", "phone": "+14155550111",
                                                            "scope": "tenant", "reason": "complaint"}).status_code == 302
    upload = SimpleUploadedFile("s.csv", b"phone\n+14155550112\n", content_type="text/csv")
    assert client.post("/portal/compliance/suppressions/", {"action": "import", "file": upload}).status_code == 302
    assert Suppression.unscoped.filter(tenant=world.a.tenant).count() == 2
    export = client.get("/portal/compliance/suppressions/export.csv")
    assert b"+14155550111" in export.content and b"complaint" in export.content
    row = Suppression.unscoped.get(tenant=world.a.tenant, phone="+14155550111")
    assert client.post(f"/portal/compliance/suppressions/{row.public_id}/delete/").status_code == 302
    assert not Suppression.unscoped.filter(pk=row.pk).exists()


def test_a_viewer_sees_and_exports_but_cannot_change(world):
    consent_services.suppression_add(tenant=world.a.tenant, phone="+14155550111")
    client = _client(world, Role.VIEWER)
    page = client.get("/portal/compliance/suppressions/")
    assert page.status_code == 200 and b"+14155550111" in page.content and b"Suppress a number" not in page.content
    assert client.get("/portal/compliance/consents/export.csv").status_code == 200
    assert client.post("/portal/compliance/consents/", {"action": "add", "phone": "+14155550112",
                                                        "status": "opted_in"}).status_code == 403
    row = Suppression.unscoped.get(tenant=world.a.tenant)
    assert client.post(f"/portal/compliance/suppressions/{row.public_id}/delete/").status_code == 403
    assert Suppression.unscoped.filter(pk=row.pk).exists()
