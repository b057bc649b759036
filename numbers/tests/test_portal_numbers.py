"""Portal numbers pages: what the tenant holds, search and rent, leases (extend, release), inbound codes, the JSON poll."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from numbers import services
from numbers.inbound import inbound_receive
from numbers.models import NumberAssignment, NumberEvent, NumberLease, NumberStatus, NumberType, PhoneNumber
from numbers.tests.factories import stock

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services as accounts_services
from accounts.models import Tenant
from accounts.roles import Role
from accounts.tests.factories import login_verified

pytestmark = pytest.mark.django_db

NUMBERS = reverse("portal:numbers")
SEARCH = reverse("portal:number-search")
INBOUND = reverse("portal:inbound-messages")


def lease_url(lease, name: str = "lease-detail") -> str:
    return reverse(f"portal:{name}", kwargs={"lease_id": lease.public_id})


def messages_url(lease) -> str:
    return lease_url(lease, "lease-messages-json")


def release_number_url(number) -> str:
    return reverse("portal:number-release", kwargs={"number_id": number.public_id})


def lease_form(**overrides) -> dict:
    return {"action": "lease", "country": "us", "type": NumberType.MOBILE, "ttl_seconds": "600", "callback_url": "",
            **overrides}


def receive(lease, text: str, ref: str, **fields):
    return inbound_receive(to=lease.number.number, sender="+14155550999", text=text, carrier="simulator",
                           carrier_message_id=ref, received_at=fields.pop("received_at", timezone.now()))


def field_errors(response, form: str, field: str | None) -> list[str]:
    return response.context[form].errors.get(field or "__all__", [])


@pytest.fixture
def us(db):
    """Three available US mobile numbers whose cost (0.3721) differs from their price (1.00)."""
    numbers = stock(3, country="US", type=NumberType.MOBILE)
    PhoneNumber.objects.filter(pk__in=[n.pk for n in numbers]).update(monthly_cost=Decimal("0.3721"))
    return numbers


# --- pages and roles ----------------------------------------------------------------------------


def test_a_viewer_sees_every_page_but_no_action(world, client, us):
    # given A's viewer
    login_verified(client, world.a.members[Role.VIEWER])
    lease, assignment = world.a.extra["lease"], world.a.extra["assignment"]
    # when they open each page
    pages = {NUMBERS: lease.number.number, SEARCH: us[0].number, lease_url(lease): "482913", INBOUND: "482913"}
    for path, expected in pages.items():
        response = client.get(path)
        # then it renders with the tenant's data, and offers no rent, lease, extend or release
        html = response.content.decode()
        assert response.status_code == 200, path
        assert expected in html, path
        for action in ('value="rent"', 'value="lease"', lease_url(lease, "lease-extend"),
                       lease_url(lease, "lease-release"), release_number_url(assignment.number)):
            assert action not in html, (path, action)


def test_a_viewer_cannot_rent_lease_extend_or_release(world, client, us):
    # given A's viewer and a snapshot of A's holdings
    login_verified(client, world.a.members[Role.VIEWER])
    lease, assignment = world.a.extra["lease"], world.a.extra["assignment"]
    before = (NumberAssignment.unscoped.filter(tenant=world.a.tenant).count(),
              NumberLease.unscoped.filter(tenant=world.a.tenant, released_at=None).count(), lease.expires_at)
    # when they try every write
    attempts = [
        (SEARCH, {"action": "rent", "number": us[0].public_id}),
        (SEARCH, lease_form()),
        (lease_url(lease, "lease-extend"), {"preset": "300"}),
        (lease_url(lease, "lease-release"), {}),
        (release_number_url(assignment.number), {}),
    ]
    # then each is refused, and the confirmation pages too
    for path, data in attempts:
        assert client.post(path, data).status_code == 403, path
    assert client.get(lease_url(lease, "lease-release")).status_code == 403
    assert client.get(release_number_url(assignment.number)).status_code == 403
    lease.refresh_from_db()
    assert (NumberAssignment.unscoped.filter(tenant=world.a.tenant).count(),
            NumberLease.unscoped.filter(tenant=world.a.tenant, released_at=None).count(), lease.expires_at) == before


@pytest.mark.parametrize("role", Role.values)
def test_the_navigation_links_numbers_for_roles_that_may_see_them(world, client, role):
    login_verified(client, world.a.members[role])
    nav = client.get(reverse("portal:dashboard")).content.decode().split('<nav class="sidebar"', 1)[1]
    nav = nav.split("</nav>", 1)[0]
    assert f'href="{NUMBERS}"' in nav and f'href="{INBOUND}"' in nav  # numbers.view: every role


def test_the_numbers_page_lists_holdings_with_the_lease_countdown(world, client):
    # given A holds a rented number and a lease
    login_verified(client, world.a.owner)
    lease, assignment = world.a.extra["lease"], world.a.extra["assignment"]
    # when the owner opens the numbers page
    html = client.get(NUMBERS).content.decode()
    # then both show, the lease with its end for the countdown and its extend presets
    assert assignment.number.number in html and "Rented" in html
    assert lease.number.number in html and lease_url(lease) in html
    assert f'data-expires-at="{lease.expires_at.isoformat()}"' in html
    assert f"until {lease.expires_at:%b %-d, %H:%M:%S} UTC" in html  # what shows without JavaScript
    assert 'name="preset" value="300"' in html and 'name="preset" value="3600"' in html
    assert release_number_url(assignment.number) in html and release_number_url(lease.number) in html
    assert '<script src="/static/js/numbers.js" defer>' in html
    # and B's numbers do not
    assert world.b.extra["lease"].number.number not in html


# --- search and rent ----------------------------------------------------------------------------


def test_search_filters_the_available_numbers_and_never_shows_cost(world, client, us):
    login_verified(client, world.a.owner)
    gb = stock(1, country="GB", type=NumberType.TOLL_FREE, start=500)[0]
    PhoneNumber.objects.filter(pk=gb.pk).update(capabilities=["voice"])

    def listed(**query) -> set[str]:
        response = client.get(SEARCH, query)
        assert response.status_code == 200
        return {n.number for n in response.context["available"]}

    assert listed(country="us") == {n.number for n in us}
    assert listed(type=NumberType.TOLL_FREE) == {gb.number}
    assert listed(capability="voice", country="GB") == {gb.number}
    assert listed(capability="sms", country="GB") == set()
    assert listed(contains=us[1].number[-6:]) == {us[1].number}
    # held numbers are not available
    assert world.a.extra["lease"].number.number not in listed()
    # a filter that does not parse is ignored, not an error page
    assert listed(country="USA", contains="12ab") >= {n.number for n in us}
    html = client.get(SEARCH, {"country": "US"}).content.decode()
    # the price is billing's number price (none here: billing/tests/test_number_charges.py prices them), never the cost
    assert "No price yet" in html and "0.3721" not in html and "0.37" not in html and "cost" not in html.lower()


def test_a_developer_rents_a_number_from_the_list(world, client, us):
    # given A's developer
    user = world.a.members[Role.DEVELOPER]
    login_verified(client, user)
    # when they press Rent on a number
    response = client.post(f"{SEARCH}?country=US", {"action": "rent", "number": us[1].public_id})
    # then the tenant rents it, audited with the person, and the numbers page says so
    assert response.status_code == 302 and response["Location"] == NUMBERS
    assignment = NumberAssignment.unscoped.get(tenant=world.a.tenant, number=us[1], ended_at=None)
    assert PhoneNumber.objects.get(pk=us[1].pk).holder == world.a.tenant
    assert NumberEvent.unscoped.filter(number=us[1], kind="assigned", actor=user.email).exists()
    page = client.get(NUMBERS).content.decode()
    assert f"You rent {us[1].number}" in page and assignment.number.number in page


def test_renting_a_number_taken_meanwhile_shows_the_error_on_the_page(world, client, us):
    login_verified(client, world.a.owner)
    services.number_assign(tenant=world.b.tenant, number=us[0])
    response = client.post(SEARCH, {"action": "rent", "number": us[0].public_id})
    assert response.status_code == 200
    assert field_errors(response, "rent_form", None) == ["This number was taken meanwhile; choose another."]
    assert "taken meanwhile" in response.content.decode()
    assert not NumberAssignment.unscoped.filter(tenant=world.a.tenant, number=us[0]).exists()


def test_an_owner_leases_a_number_and_lands_on_its_page(world, client, us):
    user = world.a.owner
    login_verified(client, user)
    response = client.post(SEARCH, lease_form(ttl_seconds="1800", callback_url="https://hooks.example.com/in"))
    lease = NumberLease.unscoped.get(tenant=world.a.tenant, number__country="US")
    assert response.status_code == 302 and response["Location"] == lease_url(lease)
    assert lease.callback_url == "https://hooks.example.com/in"
    assert (lease.expires_at - lease.started_at) == timedelta(seconds=1800)
    assert NumberEvent.unscoped.filter(number=lease.number, kind="leased", actor=user.email).exists()
    page = client.get(lease_url(lease)).content.decode()
    assert f"You lease {lease.number.number}" in page and "No messages yet" in page


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"country": "FR"}, None, "No available number matches the request."),
    ({"country": "USA"}, "country", "Two letters, e.g. US."),
    ({"ttl_seconds": "30"}, "ttl_seconds", "Select a valid choice. 30 is not one of the available choices."),
    ({"callback_url": "ftp://hooks.example.com/in"}, "callback_url", None),
])
def test_lease_errors_show_on_the_form(world, client, us, form, field, message):
    login_verified(client, world.a.owner)
    response = client.post(SEARCH, lease_form(**form))
    assert response.status_code == 200
    errors = field_errors(response, "lease_form", field)
    assert errors and (message is None or errors == [message])
    assert errors[0] in response.content.decode().replace("&#x27;", "'")
    assert not NumberLease.unscoped.filter(tenant=world.a.tenant, number__country="US").exists()


# --- extend and release ------------------------------------------------------------------------


def test_extend_by_a_preset_or_seconds(world, client):
    user = world.a.members[Role.ADMIN]
    login_verified(client, user)
    lease = world.a.extra["lease"]
    end = lease.expires_at
    response = client.post(lease_url(lease, "lease-extend"), {"preset": "900", "next": NUMBERS})
    assert response.status_code == 302 and response["Location"] == NUMBERS
    response = client.post(lease_url(lease, "lease-extend"), {"ttl_seconds": "120"})
    assert response.status_code == 302 and response["Location"] == lease_url(lease)
    lease.refresh_from_db()
    assert lease.expires_at == end + timedelta(seconds=900 + 120)
    assert NumberEvent.unscoped.filter(number=lease.number, kind="extended", actor=user.email).count() == 2
    assert "is yours until" in client.get(lease_url(lease)).content.decode()


@pytest.mark.parametrize(("data", "message"), [
    ({}, "Choose how much longer, or enter a number of seconds."),
    ({"ttl_seconds": "30"}, "Ensure this value is greater than or equal to 60."),
    ({"ttl_seconds": str(30 * 86400)}, "A lease may run at most 30 days from now."),
    ({"preset": "7"}, "Select a valid choice. 7 is not one of the available choices."),
])
def test_extend_errors_show_on_the_lease_page(world, client, data, message):
    login_verified(client, world.a.owner)
    lease = world.a.extra["lease"]
    end = lease.expires_at
    response = client.post(lease_url(lease, "lease-extend"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    lease.refresh_from_db()
    assert lease.expires_at == end


def test_an_ended_lease_cannot_be_extended_and_its_page_says_so(world, client):
    login_verified(client, world.a.owner)
    lease = world.a.extra["lease"]
    past = timezone.now() - timedelta(minutes=1)
    NumberLease.unscoped.filter(pk=lease.pk).update(started_at=past - timedelta(hours=1), expires_at=past)
    response = client.post(lease_url(lease, "lease-extend"), {"preset": "300"})
    assert response.status_code == 400 and "This lease has already ended." in response.content.decode()
    html = client.get(lease_url(lease)).content.decode()
    assert "Expired" in html and 'data-active="false"' in html and lease_url(lease, "lease-extend") not in html


def test_release_a_lease_after_confirming(world, client):
    user = world.a.owner
    login_verified(client, user)
    lease = world.a.extra["lease"]
    confirm = client.get(lease_url(lease, "lease-release"))
    assert confirm.status_code == 200 and f"Release <span class=\"mono\">{lease.number.number}</span>?" in (
        confirm.content.decode())
    response = client.post(lease_url(lease, "lease-release"))
    assert response.status_code == 302 and response["Location"] == NUMBERS
    lease.refresh_from_db()
    assert lease.released_at is not None and lease.release_reason == "released"
    assert PhoneNumber.objects.get(pk=lease.number_id).status == NumberStatus.QUARANTINED
    assert NumberEvent.unscoped.filter(number=lease.number, kind="released", actor=user.email).exists()
    # a second release changes nothing and the page says it has ended
    assert client.post(lease_url(lease, "lease-release")).status_code == 302
    assert "already ended" in client.get(lease_url(lease, "lease-release")).content.decode()


def test_release_a_rented_number_by_its_id(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])
    assignment = world.a.extra["assignment"]
    assert client.get(release_number_url(assignment.number)).status_code == 200
    response = client.post(release_number_url(assignment.number))
    assert response.status_code == 302 and response["Location"] == NUMBERS
    assignment.refresh_from_db()
    assert assignment.ended_at is not None
    # it is no longer held, so its release page is gone
    assert client.get(release_number_url(assignment.number)).status_code == 404


# --- inbound messages and the JSON poll --------------------------------------------------------


def test_the_lease_page_shows_codes_large_and_copyable_newest_first(world, client):
    login_verified(client, world.a.members[Role.BILLING])
    lease = world.a.extra["lease"]
    receive(lease, "Your WhatsApp code is 482-913", "wa-1")
    receive(lease, "Hello there, no code", "plain-1")
    html = client.get(lease_url(lease)).content.decode()
    assert '<code class="otp-code" data-code>482913</code>' in html
    assert 'data-copy-code="482913"' in html
    assert html.index("Hello there") < html.index("Your WhatsApp code")  # newest first
    assert "WhatsApp" in html and "+14155550999" in html


def test_the_json_poll_answers_new_messages_and_the_lease_state(world, client):
    # given A's viewer, and A's lease with one message from the world
    login_verified(client, world.a.members[Role.VIEWER])
    lease = world.a.extra["lease"]
    first = client.get(messages_url(lease)).json()
    assert first["lease"] == {"id": lease.public_id, "status": "active", "active": True,
                              "expires_at": lease.expires_at.isoformat()}
    assert [m["code"] for m in first["messages"]] == ["482913"]
    assert 'data-copy-code="482913"' in first["messages"][0]["html"]
    # when a new message arrives and the page asks for what came after the last one it has
    message = receive(lease, "Your WhatsApp code is 482-913", "wa-2")
    answer = client.get(messages_url(lease), {"after": first["after"]}).json()
    # then it gets the new one (and at most the one it has, which it drops by id), with the service
    new = [m for m in answer["messages"] if m["id"] != first["messages"][0]["id"]]
    assert [(m["id"], m["code"], m["service"], m["from"]) for m in new] == [
        (message.public_id, "482913", "WhatsApp", "+14155550999")]
    assert answer["after"] == message.created_at.isoformat()
    # and nothing more next time
    assert [m["id"] for m in client.get(messages_url(lease), {"after": answer["after"]}).json()["messages"]] == [
        message.public_id]
    # an `after` that does not parse answers everything
    assert len(client.get(messages_url(lease), {"after": "yesterday"}).json()["messages"]) == 2
    # and once the lease is released, it says so (the page stops polling)
    services.number_lease_release(tenant=world.a.tenant, lease=lease)
    assert client.get(messages_url(lease)).json()["lease"]["active"] is False


def test_the_json_poll_is_tenant_scoped(world, client):
    login_verified(client, world.b.owner, tenant=world.b.tenant)
    a_lease = world.a.extra["lease"]
    foreign = client.get(messages_url(a_lease))
    missing = client.get(reverse("portal:lease-messages-json", kwargs={"lease_id": "lse_doesnotexist"}))
    assert foreign.status_code == missing.status_code == 404
    assert a_lease.public_id not in foreign.content.decode() and "482913" not in foreign.content.decode()
    own = client.get(messages_url(world.b.extra["lease"])).json()
    assert [m["text"] for m in own["messages"]] == ["bravo code 482913"]


def test_the_inbound_page_lists_every_message_with_its_code(world, client):
    login_verified(client, world.a.owner)
    lease = world.a.extra["lease"]
    receive(lease, "Your Google verification code is 771234", "g-1")
    html = client.get(INBOUND).content.decode()
    assert '<code class="otp-code otp-code-sm">771234</code>' in html
    assert '<code class="otp-code otp-code-sm">482913</code>' in html
    assert "bravo code" not in html


# --- a suspended tenant -------------------------------------------------------------------------


def test_a_suspended_tenants_numbers_are_read_only(world, client, us):
    tenant = world.a.tenant
    accounts_services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, actor=accounts_services.SYSTEM)
    login_verified(client, world.a.owner)
    lease, assignment = world.a.extra["lease"], world.a.extra["assignment"]
    for path, data in [(SEARCH, lease_form()), (SEARCH, {"action": "rent", "number": us[0].public_id}),
                       (lease_url(lease, "lease-extend"), {"preset": "300"}), (lease_url(lease, "lease-release"), {}),
                       (release_number_url(assignment.number), {})]:
        response = client.post(path, data)
        assert response.status_code == 302 and response["Location"] == path, path
    lease.refresh_from_db()
    assignment.refresh_from_db()
    assert lease.released_at is None and assignment.ended_at is None
    assert not NumberLease.unscoped.filter(tenant=tenant, number__country="US").exists()
    page = client.get(NUMBERS).content.decode()
    assert "is suspended" in page and lease_url(lease, "lease-extend") not in page and "Release" not in page
    assert 'value="rent"' not in client.get(SEARCH).content.decode()
