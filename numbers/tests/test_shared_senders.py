"""Platform shared senders in the inventory: the platform keeps them (never rented or leased), and account
managers mark them in admin. Who may send from them: messaging/tests/test_sender_check.py."""
from __future__ import annotations

from numbers import services
from numbers.errors import NoNumberAvailable, NumberHeld, NumberNotAvailable
from numbers.models import NumberStatus, PhoneNumber
from numbers.tests.factories import stock

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, TenantFactory, login_verified

pytestmark = pytest.mark.django_db


def _shared(number: PhoneNumber) -> PhoneNumber:
    assert services.number_shared_sender_set(number=number, shared_sender=True)
    return number


def test_the_allocator_never_hands_out_a_shared_sender():
    # given the only available US numbers: one shared sender
    (number,) = stock(1)
    _shared(number)
    tenant = TenantFactory()
    # then it is not offered, leased or rented, even by name
    assert not services.numbers_available(country="US").exists()
    with pytest.raises(NoNumberAvailable):
        services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    with pytest.raises(NumberNotAvailable):
        services.number_assign(tenant=tenant, number=number)
    number.refresh_from_db()
    assert (number.status, number.holder) == (NumberStatus.AVAILABLE, None)


def test_a_held_number_cannot_become_a_shared_sender():
    (number,) = stock(1)
    services.number_assign(tenant=TenantFactory(), number=number)

    with pytest.raises(NumberHeld):
        services.number_shared_sender_set(number=number, shared_sender=True)
    number.refresh_from_db()
    assert number.shared_sender is False


def test_the_database_refuses_a_held_shared_sender():
    (number,) = stock(1)
    services.number_assign(tenant=TenantFactory(), number=number)

    with pytest.raises(IntegrityError), transaction.atomic():
        PhoneNumber.objects.filter(pk=number.pk).update(shared_sender=True)


def test_setting_the_flag_twice_changes_nothing_the_second_time():
    (number,) = stock(1)
    assert services.number_shared_sender_set(number=number, shared_sender=True)
    assert not services.number_shared_sender_set(number=number, shared_sender=True)
    assert services.number_shared_sender_set(number=number, shared_sender=False)
    assert number.shared_sender is False


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


def _change(client, number: PhoneNumber, **fields):
    url = reverse("admin:numbers_phonenumber_change", args=[number.pk])
    page = client.get(url)
    data = {"country": number.country, "type": number.type, "capabilities": number.capabilities,
            "carrier": number.carrier, "monthly_cost": number.monthly_cost, "monthly_price": number.monthly_price}
    for inline in page.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({f"{form.prefix}-{name}": value for name, value in form.initial.items()})
    return client.post(url, {**data, **fields})


def test_an_account_manager_marks_a_shared_sender_in_admin_and_it_is_audited(client, staff):
    (number,) = stock(1)

    response = _change(client, number, shared_sender="on")

    assert response.status_code == 302
    number.refresh_from_db()
    assert number.shared_sender is True
    event = AuditEvent.unscoped.get(action="number.updated")
    assert (event.actor, event.changes) == (staff, {"shared_sender": [False, True]})
    assert "shared_sender" in client.get(reverse("admin:numbers_phonenumber_changelist")).content.decode()


def test_admin_refuses_to_mark_a_held_number_next_to_the_field(client, staff):
    (number,) = stock(1)
    services.number_assign(tenant=TenantFactory(), number=number)

    response = _change(client, number, shared_sender="on")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["shared_sender"] == [
        "A tenant holds this number; release it before making it a shared sender."]
    number.refresh_from_db()
    assert number.shared_sender is False
