"""Account services: the last-owner rule (incl. a real race on PostgreSQL), invitations, keys, 2FA,
sign-in lockout, and the audit event each security action leaves."""
from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_otp.oath import totp

from accounts import errors, services
from accounts.models import ApiKey, AuditEvent, IpAllowlistEntry, LoginFailure, Membership, Tenant, User
from accounts.roles import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

ACCEPT_URL = "https://sms.example.com/portal/invitations/{token}/"


def _code(device) -> str:
    """The device's current one-time code, zero-padded as an authenticator shows it."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def _events(action: str, **filters):
    return AuditEvent.unscoped.filter(action=action, **filters)


def _as(user: User, ip: str = "198.51.100.7") -> services.Actor:
    return services.Actor(user=user, ip=ip)


# --- The last-owner rule -------------------------------------------------------------------


def test_it_refuses_to_demote_the_last_owner(world):
    owner = world.a.membership(Role.OWNER)

    with pytest.raises(errors.LastOwner):
        services.membership_change_role(tenant=world.a.tenant, membership=owner, role=Role.ADMIN,
                                        actor=_as(world.a.owner), actor_role=Role.OWNER)

    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not _events("membership.role_changed").exists()


def test_it_refuses_to_remove_the_last_owner(world):
    owner = world.a.membership(Role.OWNER)

    with pytest.raises(errors.LastOwner):
        services.membership_remove(tenant=world.a.tenant, membership=owner, actor=_as(world.a.owner),
                                   actor_role=Role.OWNER)

    assert Membership.unscoped.filter(pk=owner.pk, role=Role.OWNER).exists()
    assert not _events("membership.removed").exists()


@pytest.mark.parametrize("actor_role", [Role.ADMIN, Role.DEVELOPER, Role.BILLING, Role.VIEWER])
def test_it_lets_only_an_owner_grant_the_owner_role(world, actor_role):
    viewer = world.a.membership(Role.VIEWER)

    with pytest.raises(errors.PermissionDenied):
        services.membership_change_role(tenant=world.a.tenant, membership=viewer, role=Role.OWNER,
                                        actor=_as(world.a.members[actor_role]), actor_role=actor_role)

    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_it_lets_only_an_owner_demote_or_remove_an_owner(world):
    a = world.a
    second_owner = MembershipFactory(tenant=a.tenant, role=Role.OWNER)

    with pytest.raises(errors.PermissionDenied):
        services.membership_change_role(tenant=a.tenant, membership=second_owner, role=Role.VIEWER,
                                        actor=_as(a.members[Role.ADMIN]), actor_role=Role.ADMIN)
    with pytest.raises(errors.PermissionDenied):
        services.membership_remove(tenant=a.tenant, membership=second_owner, actor=_as(a.members[Role.ADMIN]),
                                   actor_role=Role.ADMIN)

    assert Membership.unscoped.filter(pk=second_owner.pk, role=Role.OWNER).exists()


def test_it_judges_the_actor_by_the_role_they_hold_now_not_the_one_the_caller_read(world):
    # given an owner who was demoted to developer after the portal read their role
    a = world.a
    second_owner = MembershipFactory(tenant=a.tenant, role=Role.OWNER)
    stale = MembershipFactory(tenant=a.tenant, role=Role.OWNER)
    Membership.unscoped.filter(pk=stale.pk).update(role=Role.DEVELOPER)

    # when they act with the role the caller read (owner)
    with pytest.raises(errors.PermissionDenied):
        services.membership_change_role(tenant=a.tenant, membership=second_owner, role=Role.VIEWER,
                                        actor=_as(stale.user), actor_role=Role.OWNER)
    with pytest.raises(errors.PermissionDenied):
        services.membership_remove(tenant=a.tenant, membership=second_owner, actor=_as(stale.user),
                                   actor_role=Role.OWNER)

    # then nothing changed and nothing was recorded
    assert Membership.unscoped.filter(pk=second_owner.pk, role=Role.OWNER).exists()
    assert not _events("membership.role_changed").exists() and not _events("membership.removed").exists()


def test_it_lets_an_owner_step_down_when_another_owner_remains(world):
    a = world.a
    MembershipFactory(tenant=a.tenant, role=Role.OWNER)
    me = a.membership(Role.OWNER)

    services.membership_change_role(tenant=a.tenant, membership=me, role=Role.ADMIN, actor=_as(a.owner),
                                    actor_role=Role.OWNER)

    me.refresh_from_db()
    assert me.role == Role.ADMIN
    event = _events("membership.role_changed").get()
    assert (event.tenant, event.actor, event.ip_address, event.target_id) == (a.tenant, a.owner, "198.51.100.7",
                                                                             me.public_id)
    assert event.changes == {"user": a.owner.email, "role": ["owner", "admin"]}


def test_it_removes_a_member_and_records_it(world):
    a = world.a
    developer = a.membership(Role.DEVELOPER)

    services.membership_remove(tenant=a.tenant, membership=developer, actor=_as(a.owner), actor_role=Role.OWNER)

    assert not Membership.unscoped.filter(pk=developer.pk).exists()
    assert _events("membership.removed", tenant=a.tenant, actor=a.owner).get().changes == {
        "user": developer.user.email, "role": "developer"}


def test_it_never_changes_another_tenants_membership(world):
    with pytest.raises(Membership.DoesNotExist):
        services.membership_change_role(tenant=world.a.tenant, membership=world.b.membership(Role.VIEWER),
                                        role=Role.ADMIN, actor=_as(world.a.owner), actor_role=Role.OWNER)

    assert world.b.membership(Role.VIEWER).role == Role.VIEWER


def test_it_adds_a_person_directly_once(world):
    person = UserFactory()

    membership = services.membership_add(tenant=world.a.tenant, user=person, role=Role.BILLING,
                                         actor=_as(world.a.owner))
    with pytest.raises(errors.AlreadyMember):
        services.membership_add(tenant=world.a.tenant, user=person, role=Role.VIEWER, actor=_as(world.a.owner))

    assert Membership.unscoped.get(tenant=world.a.tenant, user=person) == membership
    assert _events("membership.added", tenant=world.a.tenant).get().changes == {"user": person.email,
                                                                               "role": "billing"}


def _demote_each_other_at_once(tenant: Tenant, first: Membership, second: Membership) -> list[str]:
    """Two owners, two threads (each with its own connection): each demotes the other."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor: Membership, target: Membership) -> None:
        try:
            barrier.wait(timeout=10)
            services.membership_change_role(tenant=tenant, membership=target, role=Role.ADMIN,
                                            actor=services.Actor(user=actor.user), actor_role=Role.OWNER)
            outcomes.append("demoted")
        except (errors.LastOwner, errors.PermissionDenied):
            # The loser is refused: it is either the last owner or, re-read under the
            # lock, no longer an owner itself.
            outcomes.append("refused")
        except Exception as exc:  # surfaced by the caller's assertion
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=(first, second)),
               threading.Thread(target=demote, args=(second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_keeps_an_owner_when_two_owners_demote_each_other_at_once(monkeypatch):
    # Widen the window between "is there another owner?" and the write. Without the
    # tenant row lock both threads pass the check and the tenant ends with no owner.
    check = services.team._other_owner_exists

    def slow_check(tenant, membership):
        answer = check(tenant, membership)
        time.sleep(0.2)
        return answer

    monkeypatch.setattr(services.team, "_other_owner_exists", slow_check)
    for _ in range(3):
        tenant = TenantFactory()
        first, second = (MembershipFactory(tenant=tenant, role=Role.OWNER) for _ in range(2))

        outcomes = _demote_each_other_at_once(tenant, first, second)

        assert sorted(outcomes) == ["demoted", "refused"]
        assert Membership.unscoped.filter(tenant=tenant, role=Role.OWNER).count() == 1
        assert _events("membership.role_changed", tenant=tenant).count() == 1


# --- Invitations -----------------------------------------------------------------------------


def _invite(side, email: str = "new.person@example.com", role: str = Role.DEVELOPER, *, capture):
    with capture(execute=True):
        invitation = services.invitation_create(tenant=side.tenant, email=email, role=role, actor=_as(side.owner),
                                                actor_role=Role.OWNER, accept_url_template=ACCEPT_URL)
    return invitation


def _token(mail) -> str:
    return re.search(r"/portal/invitations/([\w-]+)/", mail.body).group(1)


def test_it_emails_an_invitation_with_a_link_and_stores_only_the_token_hash(
        world, mailoutbox, django_capture_on_commit_callbacks):
    invitation = _invite(world.a, "New.Person@Example.com", capture=django_capture_on_commit_callbacks)

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["new.person@example.com"]
    assert "Alpha Industries" in mail.subject
    token = _token(mail)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in invitation.token_hash
    event = _events("membership.invited", tenant=world.a.tenant).exclude(changes__email__startswith="invitee").get()
    assert (event.actor, event.changes) == (world.a.owner, {"email": "new.person@example.com", "role": "developer"})


def test_it_sends_no_email_when_the_invitation_rolls_back(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(errors.AlreadyMember):
        services.invitation_create(tenant=world.a.tenant, email=world.a.owner.email, role=Role.VIEWER,
                                   actor=_as(world.a.owner), actor_role=Role.OWNER, accept_url_template=ACCEPT_URL)

    assert mailoutbox == []


def test_it_accepts_an_invitation_as_a_new_person_with_a_password(world, mailoutbox, django_capture_on_commit_callbacks):
    invitation = _invite(world.a, capture=django_capture_on_commit_callbacks)

    membership = services.invitation_accept(token=_token(mailoutbox[0]), password="a long new passphrase", ip="192.0.2.1")

    user = User.objects.get(email="new.person@example.com")
    assert user.check_password("a long new passphrase")
    assert (membership.tenant, membership.user, membership.role) == (world.a.tenant, user, Role.DEVELOPER)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    event = _events("membership.joined").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, user, "192.0.2.1")


def test_it_accepts_an_invitation_as_the_signed_in_person(world, mailoutbox, django_capture_on_commit_callbacks):
    _invite(world.a, email=world.b.owner.email, capture=django_capture_on_commit_callbacks)

    membership = services.invitation_accept(token=_token(mailoutbox[0]), user=world.b.owner)

    assert (membership.tenant, membership.user) == (world.a.tenant, world.b.owner)


def test_it_refuses_an_invitation_for_someone_else(world, mailoutbox, django_capture_on_commit_callbacks):
    _invite(world.a, capture=django_capture_on_commit_callbacks)

    with pytest.raises(errors.PermissionDenied):
        services.invitation_accept(token=_token(mailoutbox[0]), user=world.b.owner)

    assert not Membership.unscoped.filter(tenant=world.a.tenant, user=world.b.owner).exists()


def test_it_never_sets_a_password_on_an_existing_account_through_an_invitation(
        world, mailoutbox, django_capture_on_commit_callbacks):
    # Given an invitation to someone who already has an account elsewhere
    _invite(world.a, email=world.b.owner.email, capture=django_capture_on_commit_callbacks)

    # When the link is used without signing in, with a new password
    with pytest.raises(errors.SignInRequired):
        services.invitation_accept(token=_token(mailoutbox[0]), password="attacker chosen password")

    # Then the account keeps its password and did not join
    world.b.owner.refresh_from_db()
    assert world.b.owner.check_password(PASSWORD)
    assert not Membership.unscoped.filter(tenant=world.a.tenant, user=world.b.owner).exists()


def test_it_refuses_a_used_invitation(world, mailoutbox, django_capture_on_commit_callbacks):
    _invite(world.a, capture=django_capture_on_commit_callbacks)
    token = _token(mailoutbox[0])
    services.invitation_accept(token=token, password="a long new passphrase")

    with pytest.raises(errors.InvalidInvitation):
        services.invitation_accept(token=token, password="a long new passphrase")

    assert _events("membership.joined").count() == 1


def test_it_refuses_a_revoked_invitation(world, mailoutbox, django_capture_on_commit_callbacks):
    invitation = _invite(world.a, capture=django_capture_on_commit_callbacks)
    services.invitation_revoke(tenant=world.a.tenant, invitation=invitation, actor=_as(world.a.owner))

    with pytest.raises(errors.InvalidInvitation):
        services.invitation_accept(token=_token(mailoutbox[0]), password="a long new passphrase")

    assert not User.objects.filter(email="new.person@example.com").exists()
    assert _events("membership.invitation_revoked").count() == 1


def test_it_refuses_an_expired_invitation(world, mailoutbox, django_capture_on_commit_callbacks, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    _invite(world.a, capture=django_capture_on_commit_callbacks)
    time_machine.shift(services.INVITATION_TTL + timedelta(seconds=1))

    with pytest.raises(errors.InvalidInvitation):
        services.invitation_accept(token=_token(mailoutbox[0]), password="a long new passphrase")


def test_it_refuses_an_unknown_token(world):
    with pytest.raises(errors.InvalidInvitation):
        services.invitation_accept(token="not-a-token", password="a long new passphrase")


def test_it_refuses_to_invite_a_member(world, mailoutbox):
    with pytest.raises(errors.AlreadyMember):
        services.invitation_create(tenant=world.a.tenant, email=world.a.members[Role.VIEWER].email.upper(),
                                   role=Role.ADMIN, actor=_as(world.a.owner), actor_role=Role.OWNER,
                                   accept_url_template=ACCEPT_URL)


def test_it_refuses_an_invitation_once_already_a_member(world, mailoutbox, django_capture_on_commit_callbacks):
    # Given an invitation, and meanwhile the person was added directly
    _invite(world.a, email=world.b.owner.email, capture=django_capture_on_commit_callbacks)
    services.membership_add(tenant=world.a.tenant, user=world.b.owner, role=Role.VIEWER, actor=services.SYSTEM)

    with pytest.raises(errors.AlreadyMember):
        services.invitation_accept(token=_token(mailoutbox[0]), user=world.b.owner)

    assert Membership.unscoped.get(tenant=world.a.tenant, user=world.b.owner).role == Role.VIEWER
    assert not _events("membership.joined").exists()


def test_it_lets_only_an_owner_invite_an_owner(world):
    with pytest.raises(errors.PermissionDenied):
        services.invitation_create(tenant=world.a.tenant, email="boss@example.com", role=Role.OWNER,
                                   actor=_as(world.a.members[Role.ADMIN]), actor_role=Role.ADMIN,
                                   accept_url_template=ACCEPT_URL)


# --- API keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "scopes"), [
    (Role.DEVELOPER, ["admin"]),
    (Role.DEVELOPER, None),  # no scopes means admin
    (Role.DEVELOPER, ["billing:read"]),
    (Role.BILLING, ["messages:send"]),
    (Role.VIEWER, ["messages:send"]),
])
def test_it_refuses_scopes_beyond_the_creators_role(world, role, scopes):
    with pytest.raises(errors.PermissionDenied):
        services.api_key_create(tenant=world.a.tenant, name="ci", scopes=scopes, grantor_role=role,
                                actor=_as(world.a.members[role]))

    assert not ApiKey.unscoped.filter(name="ci").exists()
    assert not _events("api_key.created", actor=world.a.members[role]).exists()


@pytest.mark.parametrize(("role", "scopes"), [
    (Role.DEVELOPER, ["messages:send", "numbers"]),
    (Role.BILLING, ["billing:read"]),
    (Role.ADMIN, None),
    (Role.OWNER, ["admin"]),
])
def test_it_grants_scopes_within_the_creators_role(world, role, scopes):
    api_key, secret = services.api_key_create(tenant=world.a.tenant, name="ci", scopes=scopes, grantor_role=role,
                                              actor=_as(world.a.members[role]))

    assert api_key.scopes == (scopes or ["admin"])
    assert services.api_key_authenticate(raw=secret) == api_key
    event = _events("api_key.created", actor=world.a.members[role]).get()
    assert event.changes["prefix"] == api_key.prefix
    assert secret not in str(event.changes) and api_key.secret_hash not in str(event.changes)


def test_it_revokes_a_key_once(world):
    key = world.a.api_key

    services.api_key_revoke(tenant=world.a.tenant, api_key=key, actor=_as(world.a.owner))
    services.api_key_revoke(tenant=world.a.tenant, api_key=key, actor=_as(world.a.owner))

    assert key.revoked_at is not None
    with pytest.raises(errors.InvalidApiKey):
        services.api_key_authenticate(raw=world.a.secret)
    event = _events("api_key.revoked").get()
    assert (event.tenant, event.actor, event.target_id) == (world.a.tenant, world.a.owner, key.public_id)


def test_it_never_revokes_another_tenants_key(world):
    services.api_key_revoke(tenant=world.a.tenant, api_key=world.b.api_key, actor=_as(world.a.owner))

    world.b.api_key.refresh_from_db()
    assert world.b.api_key.revoked_at is None
    assert not _events("api_key.revoked").exists()


# --- IP allowlist --------------------------------------------------------------------------------


def test_it_records_allowlist_additions_changes_and_removals(world):
    a = world.a

    entry = services.ip_allowlist_add(tenant=a.tenant, cidr="::ffff:203.0.113.9", note="vpn", actor=_as(a.owner))
    services.ip_allowlist_update(tenant=a.tenant, entry=entry, cidr="203.0.113.0/24", note="vpn",
                                 api_key=a.api_key, actor=_as(a.owner))
    services.ip_allowlist_update(tenant=a.tenant, entry=entry, cidr="203.0.113.0/24", note="vpn",
                                 api_key=a.api_key, actor=_as(a.owner))  # no change: no event
    services.ip_allowlist_remove(tenant=a.tenant, entry=entry, actor=_as(a.owner))

    assert not IpAllowlistEntry.unscoped.filter(pk=entry.pk).exists()
    events = list(AuditEvent.unscoped.filter(target_id=entry.public_id).order_by("id"))
    assert [e.action for e in events] == ["ip_allowlist.added", "ip_allowlist.changed", "ip_allowlist.removed"]
    assert events[0].changes["cidr"] == "203.0.113.9/32"
    assert events[1].changes == {"cidr": ["203.0.113.9/32", "203.0.113.0/24"], "api_key": [None, a.api_key.public_id]}
    assert all(e.actor == a.owner and e.tenant == a.tenant for e in events)


def test_it_refuses_to_bind_an_entry_to_another_tenants_key(world):
    with pytest.raises(errors.DomainError):
        services.ip_allowlist_add(tenant=world.a.tenant, cidr="192.0.2.0/24", api_key=world.b.api_key,
                                  actor=_as(world.a.owner))
    with pytest.raises(errors.DomainError):
        services.ip_allowlist_update(tenant=world.a.tenant, entry=world.a.allowlist_entry, cidr="192.0.2.0/24",
                                     note="", api_key=world.b.api_key, actor=_as(world.a.owner))

    world.a.allowlist_entry.refresh_from_db()
    assert world.a.allowlist_entry.cidr == "0.0.0.0/0"


# --- Tenant status -------------------------------------------------------------------------------


def test_it_records_a_status_change_once(world):
    staff = UserFactory(is_staff=True)

    services.tenant_set_status(tenant=world.a.tenant, status=Tenant.Status.SUSPENDED, actor=_as(staff))
    services.tenant_set_status(tenant=world.a.tenant, status=Tenant.Status.SUSPENDED, actor=_as(staff))
    services.tenant_set_status(tenant=world.a.tenant, status=Tenant.Status.ACTIVE, actor=_as(staff))

    actions = list(AuditEvent.unscoped.filter(tenant=world.a.tenant, actor=staff).order_by("id")
                   .values_list("action", flat=True))
    assert actions == ["tenant.suspended", "tenant.reactivated"]


def test_it_refuses_an_unknown_status(world):
    with pytest.raises(errors.DomainError):
        services.tenant_set_status(tenant=world.a.tenant, status="deleted", actor=services.SYSTEM)

    assert Tenant.objects.get(pk=world.a.tenant.pk).status == Tenant.Status.ACTIVE


# --- Second factor ---------------------------------------------------------------------------------


def test_it_confirms_an_authenticator_only_with_a_right_code(world):
    user = world.a.members[Role.DEVELOPER]
    device = services.totp_device_start(user=user)

    assert services.totp_device_confirm(user=user, device=device, token="000000", ip="192.0.2.5") is None
    device.refresh_from_db()
    assert device.confirmed is False
    assert not _events("auth.2fa_enabled").exists()

    device.throttle_reset()
    codes = services.totp_device_confirm(user=user, device=device, token=_code(device), ip="192.0.2.5")

    assert codes is not None and len(codes) == services.BACKUP_CODE_COUNT
    device.refresh_from_db()
    assert device.confirmed is True
    event = _events("auth.2fa_enabled").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, user, "192.0.2.5")


def test_it_accepts_each_backup_code_once(world):
    from django_otp.plugins.otp_static.models import StaticDevice

    user = world.a.members[Role.DEVELOPER]
    first = services.backup_codes_regenerate(user=user, ip=None)
    device = StaticDevice.objects.get(user=user)

    assert device.verify_token(first[0]) is True
    device.throttle_reset()
    assert device.verify_token(first[0]) is False

    second = services.backup_codes_regenerate(user=user, ip=None)
    device.throttle_reset()
    assert device.verify_token(first[1]) is False  # regenerating voids the old codes
    device.throttle_reset()
    assert device.verify_token(second[1]) is True
    assert _events("auth.backup_codes_regenerated", actor=user).count() == 2


def test_it_records_turning_two_factor_off(world):
    user = world.a.members[Role.DEVELOPER]
    device = services.totp_device_start(user=user)
    services.totp_device_confirm(user=user, device=device, token=_code(device), ip=None)

    services.two_factor_disable(user=user, ip="192.0.2.9")

    from django_otp import user_has_device

    assert not user_has_device(user, confirmed=None)
    event = _events("auth.2fa_disabled").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, user, "192.0.2.9")


# --- Sign-in lockout -------------------------------------------------------------------------------


def test_it_locks_an_email_and_address_pair_after_the_limit(world, settings):
    email = world.a.owner.email
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        services.login_failed(email=email, ip="203.0.113.1")
    assert not services.login_locked(email=email, ip="203.0.113.1")

    services.login_failed(email=email.upper(), ip="203.0.113.1")

    assert services.login_locked(email=email, ip="203.0.113.1")
    assert services.login_locked(email=email.upper(), ip="203.0.113.1")
    assert not services.login_locked(email=email, ip="203.0.113.2")  # another address is not locked yet
    assert not services.login_locked(email=world.b.owner.email, ip="203.0.113.1")


def test_it_locks_an_email_sprayed_from_many_addresses(world, settings):
    email = world.a.owner.email
    for i in range(settings.LOGIN_FAILURE_LIMIT * 4):
        services.login_failed(email=email, ip=f"203.0.113.{i + 1}")
        assert services.login_locked(email=email, ip="192.0.2.200") is (i + 1 >= settings.LOGIN_FAILURE_LIMIT * 4)

    assert services.login_locked(email=email, ip=None)


def test_it_unlocks_after_the_lockout_window(world, settings, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        services.login_failed(email=world.a.owner.email, ip="203.0.113.1")
    assert services.login_locked(email=world.a.owner.email, ip="203.0.113.1")

    time_machine.shift(settings.LOGIN_LOCKOUT_SECONDS + 1)

    assert not services.login_locked(email=world.a.owner.email, ip="203.0.113.1")


def test_it_clears_failures_on_success_and_records_the_sign_in(world, settings):
    user = world.a.owner
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        services.login_failed(email=user.email, ip="203.0.113.1")

    services.login_succeeded(user=user, ip="203.0.113.1")

    assert not LoginFailure.objects.filter(email=user.email).exists()
    event = _events("auth.login").get()
    assert (event.tenant, event.actor, event.ip_address) == (world.a.tenant, user, "203.0.113.1")


def test_it_records_failed_sign_ins_in_each_of_the_persons_tenants(world):
    person = world.a.members[Role.VIEWER]
    services.membership_add(tenant=world.b.tenant, user=person, role=Role.VIEWER, actor=services.SYSTEM)

    services.login_failed(email=person.email, ip="203.0.113.1")
    services.login_failed(email="nobody@example.com", ip="203.0.113.1")

    assert set(_events("auth.login_failed", actor=person).values_list("tenant__slug", flat=True)) == {"alpha", "bravo"}
    assert _events("auth.login_failed").count() == 2  # nothing for an unknown address, but it still counts
    assert LoginFailure.objects.filter(email="nobody@example.com").count() == 1
