"""Fail-closed tenancy: `Model.objects` refuses to run without a tenant and sees only that tenant's rows."""
from __future__ import annotations

import pytest

from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, Membership
from smsportal import tenancy
from smsportal.tenancy import TenantContextMissing, current_tenant, tenant_context

pytestmark = pytest.mark.django_db

TENANT_OWNED = [ApiKey, Membership, IpAllowlistEntry, Invitation, AuditEvent]


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda m: m.__name__)
def test_it_refuses_to_query_without_a_tenant(world, model):
    assert current_tenant() is None

    with pytest.raises(TenantContextMissing):
        model.objects.all()
    with pytest.raises(TenantContextMissing):
        model.objects.filter(tenant=world.b.tenant).count()


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda m: m.__name__)
def test_it_sees_only_the_active_tenants_rows(world, model):
    with tenant_context(world.a.tenant):
        rows = list(model.objects.all())
        asked_for_b = model.objects.filter(tenant=world.b.tenant).count()

    assert rows, f"the world has no {model.__name__} for A"
    assert {row.tenant_id for row in rows} == {world.a.tenant.pk}
    assert asked_for_b == 0


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda m: m.__name__)
def test_it_sees_every_tenant_through_the_explicit_unscoped_manager(world, model):
    tenants = set(model.unscoped.values_list("tenant_id", flat=True))

    assert {world.a.tenant.pk, world.b.tenant.pk} <= tenants
    assert model._default_manager is model.unscoped


def test_it_restores_the_previous_context_when_contexts_nest(world):
    with tenant_context(world.a.tenant):
        with tenant_context(world.b.tenant):
            assert current_tenant() == world.b.tenant
        assert current_tenant() == world.a.tenant
    assert current_tenant() is None


def test_it_restores_the_context_after_an_error(world):
    with pytest.raises(RuntimeError), tenant_context(world.a.tenant):
        raise RuntimeError("boom")

    assert current_tenant() is None


def test_it_resets_the_context_after_an_api_request(world, client):
    response = client.get("/v1/me", **world.a.auth)

    assert response.status_code == 200
    assert current_tenant() is None
    with pytest.raises(TenantContextMissing):
        ApiKey.objects.count()


def test_it_resets_the_context_after_a_failed_api_request(world, client):
    # A request that authenticates (setting the context) and then fails further on
    response = client.get("/v1/api-keys/key_does_not_exist", **world.a.auth)

    assert response.status_code == 404
    assert tenancy.current_tenant() is None
