"""Portal number pools page: list, create, edit, delete; roles, tenancy and suspension."""
from __future__ import annotations

import re
from numbers import services
from numbers.models import NumberPool, NumberPoolMember
from numbers.tests.factories import stock

import pytest
from django.urls import reverse

from accounts import services as accounts_services
from accounts.models import AuditEvent
from accounts.roles import Role
from accounts.tests.factories import login_verified

pytestmark = pytest.mark.django_db

LIST = reverse("portal:pools")
CREATE = reverse("portal:pool-create")


def edit_url(pool) -> str:
    return reverse("portal:pool-edit", args=[pool.public_id])


def delete_url(pool) -> str:
    return reverse("portal:pool-delete", args=[pool.public_id])


def _rent(tenant, count: int) -> list:
    numbers = stock(count, start=400)
    for number in numbers:
        services.number_assign(tenant=tenant, number=number)
    return numbers


def test_the_list_shows_the_tenants_pools_with_numbers_and_flags(world, client, django_assert_max_num_queries):
    # given A's pool "senders" with its rented number, and B's pool
    login_verified(client, world.a.members[Role.VIEWER])
    # when a viewer opens the page
    with django_assert_max_num_queries(15):
        response = client.get(LIST)
    # then A's pool shows with its number, without B's, and without write controls for a viewer
    html = response.content.decode()
    assert response.status_code == 200
    assert "senders" in html and world.a.extra["assignment"].number.number in html
    assert world.b.extra["assignment"].number.number not in html and world.b.extra["pool"].public_id not in html
    assert CREATE not in html and edit_url(world.a.extra["pool"]) not in html
    # and the side navigation links to it
    assert f'href="{LIST}"' in html and "Number pools" in html


def test_a_developer_creates_a_pool_from_held_numbers(world, client):
    numbers = _rent(world.a.tenant, 2)
    login_verified(client, world.a.members[Role.DEVELOPER])
    form = client.get(CREATE).content.decode()
    assert numbers[0].number in form and world.b.extra["assignment"].number.number not in form
    response = client.post(CREATE, {"name": "alerts", "description": "Alerts", "sticky_sender": "on",
                                    "numbers": [n.public_id for n in numbers]})
    assert response.status_code == 302 and response["Location"] == LIST
    pool = NumberPool.unscoped.get(tenant=world.a.tenant, name="alerts")
    assert (pool.sticky_sender, pool.geo_match) == (True, False) and set(pool.numbers.all()) == set(numbers)
    assert AuditEvent.unscoped.filter(tenant=world.a.tenant, action="number_pool.created",
                                      actor__email=world.a.members[Role.DEVELOPER].email).exists()


@pytest.mark.parametrize(("name", "message"), [("senders", "already exists"), ("bad name", "letters, digits")])
def test_a_refused_name_shows_next_to_the_field(world, client, name, message):
    login_verified(client, world.a.owner)
    response = client.post(CREATE, {"name": name})
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors["name"])
    assert NumberPool.unscoped.filter(tenant=world.a.tenant).count() == 1


def test_a_number_not_held_is_not_offered(world, client):
    # a number B holds is no choice on A's form: posting its id is refused by the form
    login_verified(client, world.a.owner)
    theirs = world.b.extra["assignment"].number
    response = client.post(CREATE, {"name": "steal", "numbers": [theirs.public_id]})
    assert response.status_code == 200 and response.context["form"].errors["numbers"]
    assert not NumberPool.unscoped.filter(name="steal").exists()


def test_an_admin_edits_flags_and_members(world, client):
    pool = world.a.extra["pool"]
    numbers = _rent(world.a.tenant, 1)
    login_verified(client, world.a.members[Role.ADMIN])
    page = client.get(edit_url(pool)).content.decode()
    assert 'value="senders"' in page and "checked" in page
    member = world.a.extra["assignment"].number
    assert re.search(rf'value="{member.public_id}"[^>]*checked', page)  # the current member is ticked
    response = client.post(edit_url(pool), {"name": "renamed", "description": "", "geo_match": "on",
                                            "numbers": [numbers[0].public_id]})
    assert response.status_code == 302
    pool.refresh_from_db()
    assert (pool.name, pool.sticky_sender, pool.geo_match) == ("renamed", False, True)
    assert list(pool.numbers.all()) == numbers


def test_the_owner_deletes_a_pool_after_confirming(world, client):
    pool = world.a.extra["pool"]
    login_verified(client, world.a.owner)
    confirm = client.get(delete_url(pool))
    assert confirm.status_code == 200 and "Delete “senders”?" in confirm.content.decode()
    assert NumberPool.unscoped.filter(pk=pool.pk).exists()
    assert client.post(delete_url(pool))["Location"] == LIST
    assert not NumberPool.unscoped.filter(pk=pool.pk).exists()
    assert not NumberPoolMember.unscoped.filter(pool_id=pool.pk).exists()


@pytest.mark.parametrize("role", [Role.BILLING, Role.VIEWER])
def test_billing_and_viewer_can_look_but_not_change(world, client, role):
    pool = world.a.extra["pool"]
    login_verified(client, world.a.members[role])
    assert client.get(LIST).status_code == 200
    refused = [client.get(CREATE), client.post(CREATE, {"name": "x"}), client.get(edit_url(pool)),
               client.post(edit_url(pool), {"name": "x"}), client.get(delete_url(pool)), client.post(delete_url(pool))]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert list(NumberPool.unscoped.filter(tenant=world.a.tenant).values_list("name", flat=True)) == ["senders"]


def test_another_tenants_pool_is_not_found(world, client):
    login_verified(client, world.a.owner, tenant=world.a.tenant)
    theirs = world.b.extra["pool"]
    answers = [client.get(edit_url(theirs)), client.post(edit_url(theirs), {"name": "stolen"}),
               client.get(delete_url(theirs)), client.post(delete_url(theirs))]
    assert [r.status_code for r in answers] == [404] * len(answers)
    theirs.refresh_from_db()
    assert theirs.name == "senders"


def test_a_suspended_tenant_sees_its_pools_but_changes_nothing(world, client):
    accounts_services.tenant_set_status(tenant=world.a.tenant, status="suspended", actor=accounts_services.SYSTEM)
    login_verified(client, world.a.owner)
    pool = world.a.extra["pool"]
    assert client.get(LIST).status_code == 200
    assert CREATE not in client.get(LIST).content.decode()
    for path in (CREATE, edit_url(pool), delete_url(pool)):
        assert client.post(path, {"name": "x"}).status_code == 302
    assert list(NumberPool.unscoped.filter(tenant=world.a.tenant).values_list("name", flat=True)) == ["senders"]
