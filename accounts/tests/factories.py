"""factory-boy factories and the two-tenant world used across the tests."""
from __future__ import annotations

from dataclasses import dataclass, field

import factory
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, IpAllowlistEntry, Membership, Tenant, User
from accounts.roles import Role

PASSWORD = "correct horse battery staple"


class ModelFactory(factory.django.DjangoModelFactory):
    """Creates through `unscoped` on tenant-owned models (`objects`, their default manager, fails closed
    outside a tenant context), else through the default manager."""

    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        return getattr(model_class, "unscoped", model_class._default_manager)


class UserFactory(ModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantFactory(ModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n} Ltd")


class MembershipFactory(ModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.DEVELOPER


def make_api_key(tenant: Tenant, *, scopes: list[str] | None = None, mode: str = "test", name: str = "key",
                 **kwargs) -> tuple[ApiKey, str]:
    return services.api_key_create(tenant=tenant, name=name, mode=mode, scopes=scopes, actor=services.SYSTEM, **kwargs)


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@dataclass
class Side:
    """One tenant with a member of every role, an admin key, and one object of each kind."""

    tenant: Tenant
    members: dict[str, User]
    api_key: ApiKey
    secret: str
    allowlist_entry: IpAllowlistEntry
    extra: dict = field(default_factory=dict)

    @property
    def owner(self) -> User:
        return self.members[Role.OWNER]

    def membership(self, role: str) -> Membership:
        return Membership.unscoped.get(tenant=self.tenant, user=self.members[role])

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.secret)


@dataclass
class World:
    a: Side
    b: Side

    @classmethod
    def build(cls) -> World:
        return cls(a=_side("alpha"), b=_side("bravo"))


def _side(label: str) -> Side:
    tenant = TenantFactory(slug=label, name=f"{label.title()} Industries")
    members = {}
    for role in Role.values:
        user = UserFactory(email=f"{role}@{label}.example.com")
        MembershipFactory(tenant=tenant, user=user, role=role)
        members[role] = user
    api_key, secret = make_api_key(tenant, name=f"{label} admin key")
    # 0.0.0.0/0 admits every IPv4 client (the test client is 127.0.0.1): it exists to be found, not to filter.
    entry = services.ip_allowlist_add(tenant=tenant, cidr="0.0.0.0/0", api_key=api_key, note=f"{label} office",
                                      actor=services.SYSTEM)
    invitation = services.invitation_create(
        tenant=tenant, email=f"invitee@{label}.example.com", role=Role.VIEWER,
        actor=services.Actor(user=members[Role.OWNER]), actor_role=Role.OWNER,
        accept_url_template="http://testserver/portal/invitations/{token}/",
    )
    from messaging import accept
    from messaging import services as messaging
    from smsportal.events import signing
    from smsportal.events.models import WebhookDelivery, WebhookEndpoint

    # Made directly (no audit event): the message below then emits its message.queued delivery to it.
    endpoint = WebhookEndpoint.unscoped.create(tenant=tenant, url=f"https://hooks.{label}.example/sms",
                                               description=f"{label} hooks",
                                               **signing.secret_fields(signing.secret_generate()))
    # A rented number and a leased one (GB local numbers, which no other test stocks).
    from numbers import services as numbers
    from numbers.models import NumberType
    from numbers.tests.factories import stock

    held = stock(2, country="GB", type=NumberType.LOCAL, start=100 if label == "alpha" else 200)
    assignment = numbers.number_assign(tenant=tenant, number=held[0])
    lease = numbers.number_lease_acquire(tenant=tenant, country="GB", type=NumberType.LOCAL, ttl_seconds=3600)
    # An approved sender ID (compliance). The message goes from the rented number: the US takes no alphanumeric
    # sender, and an alphanumeric one would be replaced by a shared number the world does not have
    # (docs/compliance.md "Sender IDs").
    from compliance.models import SenderId

    sender_id = SenderId.unscoped.create(tenant=tenant, value=label.title()[:11], countries=["GB", "IE"],
                                         use_case=f"{label} notifications", sample_messages=[f"Hello from {label}"],
                                         status=SenderId.Status.APPROVED, reviewed_at=timezone.now())
    message = accept.message_send(tenant=tenant, api_key=api_key, to="+14155550123", sender=assignment.number.number,
                                  text=f"Hello from {label}", client_reference=f"{label}-ref-1")
    # Its first event stored, as accepts wrote it before the message row became its own first event
    # (selectors.message_timeline shows a stored one as stored): the world then has a MessageEvent row.
    from messaging.models import MessageEvent

    MessageEvent.unscoped.create(tenant=tenant, message=message, sequence=1, status=message.status,
                                 source=MessageEvent.Source.API, detail="accepted", created_at=message.created_at)
    # A route attempt for the message and the tenant's routing policy (routing: messaging/routing/).
    from messaging.models import Carrier, MessageAttempt, Route, TenantRouting

    carrier = Carrier.objects.create(name=f"{label}-carrier", kind="simulator")
    route = Route.objects.create(carrier=carrier, prefix="1", cost="0.0079", currency="USD", cost_from=timezone.now())
    MessageAttempt.unscoped.create(tenant=tenant, message=message, number=1, route=route, carrier=carrier.name,
                                   quality_class="unrated", reason="cheapest of 1 route", cost=route.cost,
                                   currency="USD", outcome="submitted")
    # The parts of a long message as a carrier took them (messaging/parts.py).
    from messaging.models import MessagePart

    MessagePart.unscoped.bulk_create([MessagePart(tenant=tenant, message=message, number=n, carrier=carrier.name,
                                                  carrier_message_id=f"{label}-part-{n}") for n in (1, 2)])
    TenantRouting.unscoped.create(tenant=tenant, policy="balanced")
    template = messaging.template_create(tenant=tenant, name=f"{label}_otp", body="Your code is ${code}")
    from numbers.models import NumberPool, NumberPoolMember

    # Made directly (no audit event), with the rented number as its member.
    pool = NumberPool.unscoped.create(tenant=tenant, name="senders", description=f"{label} senders")
    NumberPoolMember.unscoped.create(tenant=tenant, pool=pool, number=assignment.number)
    from numbers.inbound import inbound_receive

    inbound = inbound_receive(to=lease.number.number, sender="+447700900123", text=f"{label} code 482913",
                              carrier="simulator", carrier_message_id=f"{label}-inbound-1",
                              received_at=timezone.now())
    # An issued invoice with a credit note (billing: made directly, no month of traffic needed).
    from billing.tests.factories import credit_note_issued, invoice_issued

    invoice = invoice_issued(tenant)
    credit_note = credit_note_issued(invoice)
    # The world's endpoint keeps exactly one delivery (message.queued of `message`), as tests expect.
    WebhookDelivery.unscoped.filter(tenant=tenant, event_type="message.received").delete()
    return Side(tenant=tenant, members=members, api_key=api_key, secret=secret, allowlist_entry=entry,
                extra={"invitation": invitation, "created": timezone.now(), "message": message,
                       "template": template, "webhook_endpoint": endpoint, "assignment": assignment, "lease": lease,
                       "inbound": inbound, "pool": pool, "invoice": invoice, "credit_note": credit_note,
                       "sender_id": sender_id,
                       "webhook_delivery": WebhookDelivery.unscoped.get(endpoint=endpoint, subject=message.public_id)})


def login_verified(client, user: User, *, tenant: Tenant | None = None):
    """Sign `user` in on a Django test client with a verified TOTP device (as after a real OTP check)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True
    )
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    if tenant is not None:
        session["tenant_id"] = tenant.pk
    session.save()
    return client
