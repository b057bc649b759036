"""The numbers admin: CSV import and export, audited actions through the services, read-only history."""
from __future__ import annotations

import csv
import io
from decimal import Decimal
from numbers import services
from numbers.inbound import inbound_receive
from numbers.inventory import EXPORT_COLUMNS
from numbers.models import (
    InboundMessage,
    NumberAssignment,
    NumberEvent,
    NumberLease,
    NumberPool,
    NumberPoolMember,
    NumberUsage,
    PhoneNumber,
)
from numbers.tests.factories import stock

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, TenantFactory, login_verified

pytestmark = pytest.mark.django_db

HEADER = "number,country,type,capabilities,carrier,monthly_cost,monthly_price\n"
GOOD = ("+14155550123,US,mobile,sms|voice,simulator,0.5000,1.2500\n"
        "020 7946 0958,GB,local,SMS,carrierx,0.4,0.9\n"
        "72345,US,short_code,sms|mms,simulator,500,1000\n")
IMPORT_URL = reverse("admin:numbers_phonenumber_import")
EXPORT_URL = reverse("admin:numbers_phonenumber_export")
CHANGELIST = reverse("admin:numbers_phonenumber_changelist")


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


def _upload(client, text: str | bytes, name: str = "numbers.csv"):
    content = text.encode() if isinstance(text, str) else text
    return client.post(IMPORT_URL, {"file": SimpleUploadedFile(name, content, content_type="text/csv")})


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _audits(action: str):
    return AuditEvent.unscoped.filter(action=action)


def _management_forms(response) -> dict[str, str]:
    """The inline formsets' management data of an admin change page, as the browser would post it."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({f"{form.prefix}-{name}": value for name, value in form.initial.items()})
    return data


def _descriptions() -> dict[str, tuple]:
    return {n.number: (n.country, n.type, n.capabilities, n.carrier, n.monthly_cost, n.monthly_price)
            for n in PhoneNumber.objects.all()}


# --- Import ---------------------------------------------------------------------------------------


def test_it_imports_an_uploaded_file_and_reports_the_counts(client, staff):
    # when a UTF-8 file with a byte-order mark is uploaded
    response = _upload(client, "\ufeff" + HEADER + GOOD)
    # then its numbers are in the inventory and the page says what happened
    assert response.status_code == 200
    assert response.context["result"].errors == []
    assert "3 created, 0 updated, 0 unchanged" in response.content.decode()
    assert PhoneNumber.objects.get(number="+442079460958").carrier == "carrierx"
    assert set(NumberEvent.unscoped.filter(kind="imported").values_list("actor", flat=True)) == {staff.email}
    event = _audits("numbers.imported").get()
    assert (event.actor, event.tenant, event.changes["created"]) == (staff, None, 3)

    # and the same file with one new price updates that one and leaves the others
    response = _upload(client, HEADER + GOOD.replace("1.2500", "1.5000"))
    result = response.context["result"]
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    assert PhoneNumber.objects.get(number="+14155550123").monthly_price == Decimal("1.5000")
    assert _audits("numbers.imported").count() == 2


def test_it_imports_nothing_from_a_file_with_bad_rows_and_names_them(client, staff):
    bad = ("+14155550124,GB,mobile,sms,simulator,1,2\n"      # line 5: a US number said to be GB
           "+14155550125,US,pager,sms,simulator,1,2\n"       # line 6: no such type
           "+1 415 555 0123,US,mobile,sms,simulator,1,2\n")  # line 7: already on line 2
    response = _upload(client, HEADER + GOOD + bad)
    assert response.status_code == 200
    assert [(line, field) for line, field, _ in response.context["result"].errors] == [
        (5, "number"), (6, "type"), (7, "number")]
    assert "Nothing was imported" in response.content.decode()
    assert not PhoneNumber.objects.exists() and not _audits("numbers.imported").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"number,country\n+14155550123,US\n", "lacks the column(s) type"),
    ("number,country,type,capabilities,carrier,monthly_cost,monthly_price\n+14155550123,US,mobile,sms,"
     "caf\u00e9,1,2\n".encode("latin-1"), "not UTF-8"),
])
def test_it_refuses_an_unreadable_file(client, staff, content, message):
    response = _upload(client, content)
    assert message in response.content.decode()
    assert not PhoneNumber.objects.exists()


def test_it_refuses_a_file_over_the_size_limit(client, staff, monkeypatch):
    monkeypatch.setattr("numbers.admin.MAX_UPLOAD_BYTES", 100)
    response = _upload(client, HEADER + GOOD)
    assert "larger than" in response.content.decode()
    assert not PhoneNumber.objects.exists()


# --- Export ---------------------------------------------------------------------------------------


def test_an_export_imports_back_into_an_empty_inventory_unchanged(client, staff):
    # given an inventory with a short code, a carrier a spreadsheet would run as a formula, and a leased number
    _upload(client, HEADER + GOOD + "+14155550199,US,mobile,voice,=HYPERLINK(\"x\"),0,0.0001\n")
    tenant = TenantFactory()
    services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    before = _descriptions()

    # when it is exported, emptied and the file imported
    rows = _csv(client.get(EXPORT_URL))
    NumberEvent.unscoped.all().delete()
    NumberLease.unscoped.all().delete()
    PhoneNumber.objects.all().delete()
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    response = _upload(client, buffer.getvalue())

    # then the inventory is the same
    assert response.context["result"].errors == []
    assert _descriptions() == before
    assert rows[0] == EXPORT_COLUMNS
    leased = next(row for row in rows if row[8] == tenant.slug)
    assert leased[7] == "leased"


def test_the_export_guards_against_formulas_but_keeps_numbers_as_they_are(client, staff):
    _upload(client, HEADER + "+14155550199,US,mobile,sms,=cmd|' /C calc'!A0,0,1\n"
                             "+14155550123,US,mobile,sms,@SUM(A1),0,1\n"
                             "+14155550124,US,mobile,sms,-2+3,0,1\n")
    rows = {row[0]: row for row in _csv(client.get(EXPORT_URL))[1:]}
    assert rows["+14155550199"][4] == "'=cmd|' /C calc'!A0"
    assert rows["+14155550123"][4] == "'@SUM(A1)"
    assert rows["+14155550124"][4] == "'-2+3"
    assert all(number.startswith("+1") for number in rows)


def test_it_exports_the_filtered_changelist_and_the_selected_numbers(client, staff):
    leased, spare, other = stock(3)
    services.number_lease_acquire(tenant=TenantFactory(), country="US", ttl_seconds=600)
    leased.refresh_from_db()
    assert leased.status == "leased"

    filtered = _csv(client.get(EXPORT_URL, {"status": "leased"}))
    assert [row[0] for row in filtered[1:]] == [leased.number]
    selected = _csv(client.post(CHANGELIST, {"action": "export_selected", "_selected_action": [spare.pk, other.pk]}))
    assert sorted(row[0] for row in selected[1:]) == sorted([spare.number, other.number])
    assert [event.changes["count"] for event in _audits("numbers.exported").order_by("id")] == [1, 2]
    assert all(event.actor == staff for event in _audits("numbers.exported"))


def test_the_changelist_offers_import_and_export_and_the_import_page_documents_the_format(client, staff):
    page = client.get(CHANGELIST, {"status": "available"}).content.decode()
    assert IMPORT_URL in page and f"{EXPORT_URL}?status=available" in page
    page = client.get(IMPORT_URL).content.decode()
    assert "number,country,type,capabilities,carrier,monthly_cost,monthly_price" in page
    assert "all or nothing" in page


# --- Actions and edits: through the services, audited -------------------------------------------


def test_retire_and_force_release_are_audited_to_the_tenant_concerned(client, staff):
    leased, spare = stock(2)
    tenant = TenantFactory()
    services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)

    client.post(CHANGELIST, {"action": "retire", "_selected_action": [leased.pk, spare.pk]})
    client.post(CHANGELIST, {"action": "force_release", "_selected_action": [leased.pk]})

    # the held number was not retired; the spare one was, with no tenant
    assert dict(PhoneNumber.objects.values_list("pk", "status")) == {leased.pk: "quarantined", spare.pk: "retired"}
    retired = _audits("number.retired").get()
    assert (retired.tenant, retired.actor, retired.target_id) == (None, staff, spare.public_id)
    # the force-release is in the former holder's audit log, and the number's events name the staff member
    released = _audits("number.force_released").get()
    assert (released.tenant, released.actor, released.target_id) == (tenant, staff, leased.public_id)
    assert released.changes["holder"] == tenant.slug
    assert NumberEvent.unscoped.get(number=leased, kind="released").actor == staff.email
    assert NumberLease.unscoped.get(number=leased).release_reason == "force_released"


def test_force_releasing_a_free_number_records_nothing(client, staff):
    (spare,) = stock(1)
    client.post(CHANGELIST, {"action": "force_release", "_selected_action": [spare.pk]})
    assert not _audits("number.force_released").exists()


def test_adding_and_editing_a_number_go_through_the_import_rules(client, staff):
    add = reverse("admin:numbers_phonenumber_add")
    data = {"number": "020 7946 0958", "country": "gb", "type": "local", "capabilities": ["sms"],
            "carrier": "carrierx", "monthly_cost": "0.4", "monthly_price": "0.9"}
    assert client.post(add, {**data, "country": "US"}).status_code == 200  # not a US number
    assert not PhoneNumber.objects.exists()

    assert client.post(add, data).status_code == 302
    number = PhoneNumber.objects.get()
    assert (number.number, number.country) == ("+442079460958", "GB")
    assert _audits("number.created").get().actor == staff

    change = reverse("admin:numbers_phonenumber_change", args=[number.pk])
    response = client.post(change, {**data, **_management_forms(client.get(change)), "monthly_price": "1.1"})
    assert response.status_code == 302
    number.refresh_from_db()
    assert number.monthly_price == Decimal("1.1000")
    assert _audits("number.updated").get().changes == {"monthly_price": ["0.9000", "1.1000"]}


def test_injecting_an_inbound_message_is_audited_to_the_holder(client, staff):
    (number,) = stock(1)
    tenant = TenantFactory()
    services.number_assign(tenant=tenant, number=number)
    response = client.post(reverse("admin:numbers_inboundmessage_inject"),
                           {"to": number.number, "sender": "+447700900321", "text": "hello"})
    assert response.status_code == 302
    message = InboundMessage.unscoped.get()
    event = _audits("inbound.injected").get()
    assert (event.tenant, event.actor, event.target_id) == (tenant, staff, message.public_id)
    assert reverse("admin:numbers_inboundmessage_inject") in client.get(
        reverse("admin:numbers_inboundmessage_changelist")).content.decode()


def test_staff_who_may_only_view_inbound_messages_cannot_inject(client):
    viewer = User.objects.create_user(email="viewer@smsportal.example.com", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_inboundmessage"))
    login_verified(client, viewer)
    url = reverse("admin:numbers_inboundmessage_inject")
    assert client.get(reverse("admin:numbers_inboundmessage_changelist")).status_code == 200
    assert client.post(url, {"to": "+14155550123", "sender": "+447700900321", "text": "hi"}).status_code == 403
    assert not InboundMessage.unscoped.exists()


# --- History and read-only admins -----------------------------------------------------------------


def test_the_number_page_shows_its_events_leases_and_assignments_newest_first(client, staff):
    (number,) = stock(1)
    tenant = TenantFactory()
    first = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    services.number_force_release(number=number)
    PhoneNumber.objects.filter(pk=number.pk).update(status="available", quarantined_until=None)
    assignment = services.number_assign(tenant=tenant, number=number)

    response = client.get(reverse("admin:numbers_phonenumber_change", args=[number.pk]))
    page = response.content.decode()
    assert first.public_id in page and assignment.public_id in page
    events = [form.instance.kind for form in response.context["inline_admin_formsets"][0].formset.forms]
    assert events == ["assigned", "released", "leased", "imported"]
    # and links to the whole history of this number only
    stock(1, start=10)
    for model in (NumberEvent, NumberLease, NumberAssignment):
        url = reverse(f"admin:numbers_{model._meta.model_name}_changelist") + f"?number__id__exact={number.pk}"
        assert url in page
        rows = client.get(url).context["cl"].result_list
        assert rows and {row.number_id for row in rows} == {number.pk}


@pytest.mark.parametrize("model", [NumberLease, NumberAssignment, NumberEvent, NumberUsage, InboundMessage,
                                   NumberPool])
def test_history_and_holdings_are_read_only(client, staff, model):
    (number,) = stock(1)
    tenant = TenantFactory()
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    services.number_lease_release(tenant=tenant, lease=lease)
    pool = NumberPool.unscoped.create(tenant=tenant, name="main")
    NumberPoolMember.unscoped.create(tenant=pool.tenant, pool=pool, number=number)
    services.number_assign(tenant=tenant, number=stock(1, start=10)[0])
    inbound_receive(to=number.number, sender="+447700900321", text="hi", carrier="simulator",
                    carrier_message_id="x1", received_at=timezone.now())
    obj = model.unscoped.first()
    name = f"admin:numbers_{model._meta.model_name}"

    assert client.get(reverse(f"{name}_changelist")).status_code == 200
    page = client.get(reverse(f"{name}_change", args=[obj.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get(reverse(f"{name}_add")).status_code == 403
    assert client.post(reverse(f"{name}_change", args=[obj.pk]), {}).status_code == 403
    assert client.get(reverse(f"{name}_delete", args=[obj.pk])).status_code == 403
    assert model.unscoped.filter(pk=obj.pk).exists()


def test_the_lease_list_filters_active_and_ended(client, staff):
    stock(2)
    tenant = TenantFactory()
    ended = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    services.number_lease_release(tenant=tenant, lease=ended)
    active = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    url = reverse("admin:numbers_numberlease_changelist")
    assert [lease.pk for lease in client.get(url, {"state": "active"}).context["cl"].result_list] == [active.pk]
    assert [lease.pk for lease in client.get(url, {"state": "ended"}).context["cl"].result_list] == [ended.pk]
    found = client.get(url, {"q": tenant.slug}).context["cl"].result_list
    assert {lease.pk for lease in found} == {active.pk, ended.pk}


def test_staff_without_a_second_factor_cannot_import_or_export(client):
    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    client.force_login(staff)  # a password session, never verified with a one-time code
    for url in [IMPORT_URL, EXPORT_URL, CHANGELIST, reverse("admin:numbers_numberlease_changelist")]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    response = _upload(client, HEADER + GOOD)
    assert response.status_code == 302 and not PhoneNumber.objects.exists()
    assert not _audits("numbers.exported").exists()


def test_import_numbers_reads_an_admin_export_too(client, staff, tmp_path):
    _upload(client, HEADER + GOOD + "+14155550199,US,mobile,voice,@carrier,0,1\n")
    before = _descriptions()
    path = tmp_path / "export.csv"
    path.write_text(b"".join(client.get(EXPORT_URL).streaming_content).decode())
    NumberEvent.unscoped.all().delete()
    PhoneNumber.objects.all().delete()
    out = io.StringIO()
    call_command("import_numbers", str(path), stdout=out)
    assert out.getvalue().strip() == "4 created, 0 updated, 0 errors"
    assert _descriptions() == before


def test_the_pool_list_counts_members(client, staff):
    numbers = stock(2)
    pool = NumberPool.unscoped.create(tenant=TenantFactory(), name="main")
    for number in numbers:
        NumberPoolMember.unscoped.create(tenant=pool.tenant, pool=pool, number=number)
    response = client.get(reverse("admin:numbers_numberpool_changelist"))
    assert [row.member_count for row in response.context["cl"].result_list] == [2]
