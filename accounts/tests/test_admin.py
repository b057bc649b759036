"""The admin for account managers: OTP-only access, audited actions through the services, no secrets shown."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, LoginFailure, Membership, Tenant, User
from accounts.roles import Role
from accounts.tests.factories import PASSWORD, UserFactory, login_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)


@pytest.fixture
def staff_client(client, staff):
    return login_verified(client, staff)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _code(device) -> str:
    """The device's current one-time code, zero-padded as an authenticator shows it."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def _events(action: str, **filters):
    return AuditEvent.unscoped.filter(action=action, **filters)


def _admin_pages(user: User) -> list[str]:
    """Every registered changelist, and every add page the admin offers to `user`."""
    request = RequestFactory().get("/admin/")
    request.user = user
    pages = []
    for model, model_admin in admin.site._registry.items():
        pages.append(_url(model, "changelist"))
        if model_admin.has_add_permission(request):
            pages.append(_url(model, "add"))
    return pages


# --- Second factor -------------------------------------------------------------------------


def test_it_opens_every_changelist_and_add_page_to_verified_staff(world, staff, staff_client):
    pages = _admin_pages(staff)
    assert _url(Tenant, "add") in pages and _url(ApiKey, "add") not in pages

    for page in ["/admin/", *pages]:
        response = staff_client.get(page)
        assert response.status_code == 200, page


def test_it_keeps_staff_without_a_verified_device_out_of_every_admin_page(world, staff, client):
    # Given staff signed in with a password only (no device at all)
    client.force_login(staff)

    for page in ["/admin/", *_admin_pages(staff)]:
        response = client.get(page)
        # Then every page sends them to the admin sign-in, which asks for a one-time code
        assert response.status_code == 302, page
        assert response["Location"].startswith("/admin/login/"), page


def test_it_keeps_staff_with_an_unverified_session_out(staff, client):
    # Given staff who own a device but whose session never passed the OTP step
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    client.force_login(staff)

    response = client.get(_url(Tenant, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_keeps_verified_non_staff_out(world, client):
    login_verified(client, world.a.owner)

    response = client.get(_url(Tenant, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_signs_staff_in_with_password_and_a_one_time_code(staff, client):
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)

    response = client.post("/admin/login/?next=/admin/", {
        "username": staff.email, "password": PASSWORD, "otp_device": device.persistent_id,
        "otp_token": _code(device), "next": "/admin/",
    })

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert _events("auth.login", actor=staff, tenant=None).count() == 1


def test_it_refuses_the_password_alone(staff, client):
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)

    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})

    assert response.status_code == 200  # the form again, now asking for the code
    assert client.get("/admin/").status_code == 302


def test_it_locks_admin_sign_in_after_repeated_wrong_passwords(staff, client, settings):
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        response = client.post("/admin/login/", {"username": staff.email, "password": "wrong password"})
        assert response.status_code == 200
    assert LoginFailure.objects.filter(email=staff.email, ip_address="127.0.0.1").count() == settings.LOGIN_FAILURE_LIMIT
    assert _events("auth.login_failed", actor=staff).count() == settings.LOGIN_FAILURE_LIMIT

    # When the right password and a valid code follow
    response = client.post("/admin/login/", {
        "username": staff.email, "password": PASSWORD, "otp_device": device.persistent_id,
        "otp_token": _code(device),
    })

    # Then the lockout still holds
    assert response.status_code == 200
    assert b"Too many failed sign-in attempts" in response.content
    assert client.get("/admin/").status_code == 302
    assert not _events("auth.login", actor=staff).exists()


# --- Tenants -----------------------------------------------------------------------------------


def _tenant_action(client, action: str, *tenants: Tenant):
    return client.post(_url(Tenant, "changelist"), {"action": action, "_selected_action": [t.pk for t in tenants]})


def test_it_suspends_a_tenant_through_the_service_and_the_api_then_refuses_its_keys(world, staff, staff_client, api):
    response = _tenant_action(staff_client, "suspend", world.a.tenant)

    assert response.status_code == 302
    world.a.tenant.refresh_from_db()
    world.b.tenant.refresh_from_db()
    assert world.a.tenant.status == Tenant.Status.SUSPENDED
    assert world.b.tenant.status == Tenant.Status.ACTIVE
    event = _events("tenant.suspended").get()
    assert (event.tenant, event.actor, event.actor_label) == (world.a.tenant, staff, staff.email)
    assert event.ip_address == "127.0.0.1"
    assert event.changes == {"status": ["active", "suspended"]}
    me = api.get("/v1/me", **world.a.auth)
    assert me.status_code == 403
    assert me.json()["error"]["code"] == "tenant_suspended"
    assert api.get("/v1/me", **world.b.auth).status_code == 200


def test_it_reactivates_a_suspended_tenant(world, staff, staff_client, api):
    _tenant_action(staff_client, "suspend", world.a.tenant)

    _tenant_action(staff_client, "reactivate", world.a.tenant)

    world.a.tenant.refresh_from_db()
    assert world.a.tenant.status == Tenant.Status.ACTIVE
    event = _events("tenant.reactivated").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, staff, "127.0.0.1")
    assert event.changes == {"status": ["suspended", "active"]}
    assert api.get("/v1/me", **world.a.auth).status_code == 200


def test_it_records_nothing_when_suspending_a_suspended_tenant(world, staff_client):
    _tenant_action(staff_client, "suspend", world.a.tenant)

    _tenant_action(staff_client, "suspend", world.a.tenant, world.b.tenant)

    assert _events("tenant.suspended").count() == 2
    assert set(_events("tenant.suspended").values_list("tenant__slug", flat=True)) == {"alpha", "bravo"}


def test_it_offers_only_active_staff_as_account_managers(world, staff, staff_client):
    inactive = User.objects.create_user(email="gone@smsportal.example.com", is_staff=True, is_active=False)

    response = staff_client.get(_url(Tenant, "change", world.a.tenant.pk))

    choices = set(response.context["adminform"].form.fields["account_manager"].queryset)
    assert staff in choices
    assert world.a.owner not in choices and inactive not in choices


def _tenant_post(tenant: Tenant, memberships: list[dict], **fields) -> dict:
    """The tenant change form as the browser posts it, with the membership inline."""
    data = {
        "name": tenant.name, "account_manager": "", "data_region": tenant.data_region,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": sum(1 for m in memberships if m.get("id")),
        "memberships-MIN_NUM_FORMS": 0, "memberships-MAX_NUM_FORMS": 1000,
    }
    if tenant.require_2fa:
        data["require_2fa"] = "on"
    for i, m in enumerate(memberships):
        data.update({f"memberships-{i}-{k}": v for k, v in m.items() if v is not None})
        data[f"memberships-{i}-tenant"] = tenant.pk or ""
    data.update(fields)
    return data


def _rows(tenant: Tenant, **overrides) -> list[dict]:
    """One inline row per current membership; overrides map a user to the row's new values."""
    rows = []
    for m in Membership.unscoped.filter(tenant=tenant).select_related("user"):
        row = {"id": m.pk, "user": m.user.pk, "role": m.role}
        row.update(overrides.get(m.user.email, {}))
        rows.append(row)
    return rows


def test_it_refuses_to_leave_a_tenant_without_an_owner_through_the_inline(world, staff_client):
    owner = world.a.owner

    response = staff_client.post(_url(Tenant, "change", world.a.tenant.pk),
                                 _tenant_post(world.a.tenant, _rows(world.a.tenant, **{owner.email: {"role": "admin"}})))

    assert response.status_code == 200
    assert "A tenant must keep at least one owner" in response.content.decode()
    assert world.a.membership(Role.OWNER).role == Role.OWNER
    assert not _events("membership.role_changed").exists()


def test_it_refuses_to_delete_the_last_owner_through_the_inline(world, staff_client):
    owner = world.a.owner

    response = staff_client.post(_url(Tenant, "change", world.a.tenant.pk),
                                 _tenant_post(world.a.tenant, _rows(world.a.tenant, **{owner.email: {"DELETE": "on"}})))

    assert response.status_code == 200
    assert Membership.unscoped.filter(tenant=world.a.tenant, user=owner, role=Role.OWNER).exists()


def test_it_hands_ownership_over_in_one_save_through_the_services(world, staff, staff_client):
    # Given: make the admin an owner, demote the owner, remove the viewer, add a newcomer as developer
    a = world.a
    newcomer = UserFactory(email="newcomer@example.com")
    rows = _rows(a.tenant, **{
        a.members[Role.ADMIN].email: {"role": "owner"},
        a.owner.email: {"role": "admin"},
        a.members[Role.VIEWER].email: {"DELETE": "on"},
    })
    rows.append({"user": newcomer.pk, "role": "developer"})

    response = staff_client.post(_url(Tenant, "change", a.tenant.pk), _tenant_post(a.tenant, rows))

    assert response.status_code == 302
    roles = dict(Membership.unscoped.filter(tenant=a.tenant).values_list("user__email", "role"))
    assert roles[a.members[Role.ADMIN].email] == "owner"
    assert roles[a.owner.email] == "admin"
    assert a.members[Role.VIEWER].email not in roles
    assert roles["newcomer@example.com"] == "developer"
    assert _events("membership.role_changed", tenant=a.tenant, actor=staff).count() == 2
    assert _events("membership.removed", tenant=a.tenant, actor=staff).get().changes["user"] == a.members[Role.VIEWER].email
    assert _events("membership.added", tenant=a.tenant, actor=staff).get().changes == {
        "user": "newcomer@example.com", "role": "developer"}


def test_it_records_a_changed_require_2fa_and_other_fields(world, staff, staff_client):
    tenant = world.a.tenant

    response = staff_client.post(_url(Tenant, "change", tenant.pk), _tenant_post(
        tenant, _rows(tenant), name="Alpha Renamed", require_2fa="on", account_manager=staff.pk))

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.require_2fa, tenant.account_manager) == ("Alpha Renamed", True, staff)
    assert _events("tenant.require_2fa_changed", tenant=tenant, actor=staff).get().changes == {"require_2fa": True}
    assert _events("tenant.updated", tenant=tenant, actor=staff).get().changes == {
        "name": ["Alpha Industries", "Alpha Renamed"], "account_manager": [None, staff.email]}


def test_an_account_manager_allows_shared_senders_and_it_is_audited(world, staff, staff_client):
    tenant = world.a.tenant

    response = staff_client.post(_url(Tenant, "change", tenant.pk), _tenant_post(
        tenant, _rows(tenant), shared_senders_allowed="on"))

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.shared_senders_allowed is True
    assert _events("tenant.updated", tenant=tenant, actor=staff).get().changes == {
        "shared_senders_allowed": [False, True]}


def test_it_creates_a_tenant_with_its_owner(staff, staff_client):
    owner = UserFactory(email="founder@example.com")
    data = _tenant_post(Tenant(name="Charlie", data_region="eu"), [{"user": owner.pk, "role": "owner"}], slug="charlie",
                        account_manager=staff.pk)

    response = staff_client.post(_url(Tenant, "add"), data)

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="charlie")
    assert Membership.unscoped.get(tenant=tenant, user=owner).role == Role.OWNER
    assert _events("tenant.created", tenant=tenant, actor=staff).exists()
    assert _events("membership.added", tenant=tenant, actor=staff).exists()


def test_it_refuses_a_new_tenant_without_an_owner(staff_client):
    data = _tenant_post(Tenant(name="Delta", data_region="eu"), [], slug="delta")

    response = staff_client.post(_url(Tenant, "add"), data)

    assert response.status_code == 200
    assert "A tenant needs an owner" in response.content.decode()
    assert not Tenant.objects.filter(slug="delta").exists()


def test_it_never_deletes_tenants(world, staff_client):
    assert staff_client.get(_url(Tenant, "delete", world.a.tenant.pk)).status_code == 403
    response = staff_client.get(_url(Tenant, "changelist"))
    assert "delete_selected" not in dict(response.context["action_form"].fields["action"].choices)


# --- Memberships ---------------------------------------------------------------------------------


def test_it_refuses_to_demote_the_last_owner(world, staff_client):
    membership = world.a.membership(Role.OWNER)

    response = staff_client.post(_url(Membership, "change", membership.pk), {"role": "admin"})

    assert response.status_code == 200
    assert "A tenant must keep at least one owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert not _events("membership.role_changed").exists()


def test_it_changes_a_role_through_the_service(world, staff, staff_client):
    membership = world.a.membership(Role.VIEWER)

    response = staff_client.post(_url(Membership, "change", membership.pk), {"role": "owner"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    event = _events("membership.role_changed", actor=staff).get()
    assert (event.tenant, event.changes["role"]) == (world.a.tenant, ["viewer", "owner"])


def test_it_refuses_to_delete_the_last_owner(world, staff_client):
    membership = world.a.membership(Role.OWNER)

    assert staff_client.get(_url(Membership, "delete", membership.pk)).status_code == 403
    assert staff_client.post(_url(Membership, "delete", membership.pk), {"post": "yes"}).status_code == 403
    assert Membership.unscoped.filter(pk=membership.pk).exists()


def test_it_removes_a_member_through_the_service(world, staff, staff_client):
    membership = world.a.membership(Role.DEVELOPER)

    response = staff_client.post(_url(Membership, "delete", membership.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.unscoped.filter(pk=membership.pk).exists()
    assert _events("membership.removed", tenant=world.a.tenant, actor=staff).get().changes == {
        "user": "developer@alpha.example.com", "role": "developer"}


def test_it_offers_no_bulk_delete_of_memberships(world, staff_client):
    response = staff_client.get(_url(Membership, "changelist"))

    assert response.status_code == 200
    assert response.context["action_form"] is None  # delete_selected was the only action
    assert 'value="delete_selected"' not in response.content.decode()


def test_it_adds_a_membership_through_the_service(world, staff, staff_client):
    person = UserFactory(email="consultant@example.com")

    response = staff_client.post(_url(Membership, "add"), {"tenant": world.a.tenant.pk, "user": person.pk,
                                                           "role": "viewer"})

    assert response.status_code == 302
    membership = Membership.unscoped.get(tenant=world.a.tenant, user=person)
    event = _events("membership.added", actor=staff).get()
    assert (event.tenant, event.target_id, event.ip_address) == (world.a.tenant, membership.public_id, "127.0.0.1")


def test_it_refuses_a_second_membership_for_the_same_person(world, staff_client):
    response = staff_client.post(_url(Membership, "add"), {"tenant": world.a.tenant.pk, "user": world.a.owner.pk,
                                                           "role": "viewer"})

    assert response.status_code == 200
    assert Membership.unscoped.filter(tenant=world.a.tenant, user=world.a.owner).count() == 1
    assert not _events("membership.added").exists()


# --- API keys -----------------------------------------------------------------------------------


def test_it_revokes_keys_through_the_service(world, staff, staff_client, api):
    response = staff_client.post(_url(ApiKey, "changelist"), {"action": "revoke",
                                                              "_selected_action": [world.a.api_key.pk]})

    assert response.status_code == 302
    world.a.api_key.refresh_from_db()
    assert world.a.api_key.revoked_at is not None
    event = _events("api_key.revoked").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, staff, "127.0.0.1")
    me = api.get("/v1/me", **world.a.auth)
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "invalid_api_key"
    assert api.get("/v1/me", **world.b.auth).status_code == 200


def test_it_never_shows_a_key_hash(world, staff_client):
    key = world.a.api_key

    pages = [staff_client.get(_url(ApiKey, "change", key.pk)), staff_client.get(_url(ApiKey, "changelist")),
             staff_client.get(_url(ApiKey, "history", key.pk))]

    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        assert key.secret_hash not in html
        assert world.a.secret not in html
        assert "secret_hash" not in html
    assert key.prefix in pages[0].content.decode()


def test_it_offers_no_way_to_add_change_or_delete_keys(world, staff_client):
    key = world.a.api_key

    assert staff_client.get(_url(ApiKey, "add")).status_code == 403
    assert staff_client.get(_url(ApiKey, "delete", key.pk)).status_code == 403
    staff_client.post(_url(ApiKey, "change", key.pk), {"name": "renamed", "scopes": '["messages:send"]'})

    key.refresh_from_db()
    assert (key.name, key.scopes) == ("alpha admin key", ["admin"])


# --- Allowlist ----------------------------------------------------------------------------------


def test_it_adds_an_allowlist_entry_through_the_service(world, staff, staff_client):
    response = staff_client.post(_url(IpAllowlistEntry, "add"), {
        "tenant": world.a.tenant.pk, "cidr": " 203.0.113.7/24 ", "api_key": "", "note": "office"})

    assert response.status_code == 302
    entry = IpAllowlistEntry.unscoped.get(tenant=world.a.tenant, note="office")
    assert (entry.cidr, entry.created_by) == ("203.0.113.0/24", staff)
    event = _events("ip_allowlist.added", actor=staff).get()
    assert (event.tenant, event.target_id, event.changes["cidr"]) == (world.a.tenant, entry.public_id, "203.0.113.0/24")


def test_it_refuses_an_invalid_cidr(world, staff_client):
    response = staff_client.post(_url(IpAllowlistEntry, "add"), {"tenant": world.a.tenant.pk, "cidr": "300.1.2.3"})

    assert response.status_code == 200
    assert not IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant).exclude(pk=world.a.allowlist_entry.pk).exists()


def test_it_refuses_to_bind_an_entry_to_another_tenants_key(world, staff_client):
    response = staff_client.post(_url(IpAllowlistEntry, "add"), {
        "tenant": world.a.tenant.pk, "cidr": "198.51.100.0/24", "api_key": world.b.api_key.pk})

    assert response.status_code == 200
    assert "another tenant" in response.content.decode()
    assert not IpAllowlistEntry.unscoped.filter(cidr="198.51.100.0/24").exists()


def test_it_changes_an_allowlist_entry_through_the_service(world, staff, staff_client):
    entry = world.a.allowlist_entry

    response = staff_client.post(_url(IpAllowlistEntry, "change", entry.pk), {
        "cidr": "192.0.2.0/24", "api_key": entry.api_key.pk, "note": "alpha office"})

    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.cidr == "192.0.2.0/24"
    assert _events("ip_allowlist.changed", actor=staff).get().changes == {"cidr": ["0.0.0.0/0", "192.0.2.0/24"]}


def test_it_removes_one_allowlist_entry_through_the_service(world, staff, staff_client):
    entry = world.a.allowlist_entry

    response = staff_client.post(_url(IpAllowlistEntry, "delete", entry.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not IpAllowlistEntry.unscoped.filter(pk=entry.pk).exists()
    assert _events("ip_allowlist.removed", tenant=world.a.tenant, actor=staff).get().target_id == entry.public_id


def test_it_bulk_deletes_allowlist_entries_through_the_service(world, staff, staff_client):
    entries = [world.a.allowlist_entry, world.b.allowlist_entry]

    response = staff_client.post(_url(IpAllowlistEntry, "changelist"), {
        "action": "delete_selected", "_selected_action": [e.pk for e in entries], "post": "yes"})

    assert response.status_code == 302
    assert not IpAllowlistEntry.unscoped.exists()
    removed = _events("ip_allowlist.removed", actor=staff)
    assert set(removed.values_list("target_id", flat=True)) == {e.public_id for e in entries}
    assert set(removed.values_list("tenant__slug", flat=True)) == {"alpha", "bravo"}


# --- Invitations ---------------------------------------------------------------------------------


def test_it_revokes_invitations_through_the_service(world, staff, staff_client):
    invitation = world.a.extra["invitation"]

    staff_client.post(_url(Invitation, "changelist"), {"action": "revoke", "_selected_action": [invitation.pk]})

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert _events("membership.invitation_revoked", tenant=world.a.tenant, actor=staff).count() == 1


def test_it_never_shows_an_invitation_token_hash(world, staff_client):
    invitation = world.a.extra["invitation"]

    response = staff_client.get(_url(Invitation, "change", invitation.pk))

    assert response.status_code == 200
    assert invitation.token_hash not in response.content.decode()
    assert staff_client.get(_url(Invitation, "delete", invitation.pk)).status_code == 403


# --- Audit trail -----------------------------------------------------------------------------------


def test_it_keeps_the_audit_trail_read_only(world, staff_client):
    event = AuditEvent.unscoped.filter(tenant=world.a.tenant).first()
    before = AuditEvent.unscoped.count()

    assert staff_client.get(_url(AuditEvent, "add")).status_code == 403
    assert staff_client.post(_url(AuditEvent, "add"), {"action": "forged"}).status_code == 403
    assert staff_client.post(_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    page = staff_client.get(_url(AuditEvent, "change", event.pk))
    staff_client.post(_url(AuditEvent, "change", event.pk), {"action": "forged"})
    bulk = staff_client.post(_url(AuditEvent, "changelist"), {"action": "delete_selected",
                                                              "_selected_action": [event.pk], "post": "yes"})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and "deletelink" not in html
    assert bulk.status_code == 200  # "no action selected": there is none to choose
    assert "delete_selected" not in str(staff_client.get(_url(AuditEvent, "changelist")).content)
    assert AuditEvent.unscoped.count() == before
    event.refresh_from_db()
    assert event.action != "forged"


# --- People's second factors ---------------------------------------------------------------------


def test_it_never_shows_a_persons_totp_seed_or_backup_codes(world, staff_client):
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    from accounts import services

    owner = world.a.owner
    device = TOTPDevice.objects.create(user=owner, name="Authenticator app", confirmed=True)
    codes = services.backup_codes_regenerate(user=owner, ip=None)
    static = StaticDevice.objects.get(user=owner)
    assert StaticToken.objects.filter(device=static).count() == len(codes)

    totp_page = staff_client.get(_url(TOTPDevice, "change", device.pk)).content.decode()
    static_page = staff_client.get(_url(StaticDevice, "change", static.pk)).content.decode()

    assert device.key not in totp_page and "qrcode" not in totp_page
    assert not any(code in static_page for code in codes)
    assert staff_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/").status_code == 403
    assert staff_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code == 403
