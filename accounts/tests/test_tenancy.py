"""Fail-closed tenancy: `Model.objects` refuses to run without a tenant and sees only that tenant's rows."""
from __future__ import annotations

import pytest
from django.db import models

from accounts.models import ApiKey
from accounts.tests.tenant_models import tenant_owned_models
from smsportal import tenancy
from smsportal.tenancy import TenantContextMissing, TenantScopedManager, current_tenant, tenant_context

pytestmark = pytest.mark.django_db

OUTBOX = {"events.WebhookEndpoint", "events.WebhookCallbackSecret", "events.WebhookDelivery", "events.WebhookAttempt",
          "events.EventFanout"}
TENANT_OWNED = tenant_owned_models()
# Rows the world has for each tenant (the others are made by tests that need them).
IN_THE_WORLD = {"accounts.ApiKey", "accounts.Membership", "accounts.IpAllowlistEntry", "accounts.Invitation",
                "accounts.AuditEvent", "messaging.Message", "messaging.MessageEvent", "messaging.MessageTemplate",
                "numbers.NumberAssignment", "numbers.NumberLease", "numbers.NumberPool", "numbers.NumberPoolMember",
                "numbers.InboundMessage", "numbers.NumberEvent", "messaging.MessageAttempt", "messaging.MessagePart",
                "messaging.TenantRouting"}


def test_the_registry_finds_every_tenant_owned_model():
    # given the app registry; then the models with a tenant foreign key include those the issue names
    labels = {model._meta.label for model in tenant_owned_models()}
    assert IN_THE_WORLD | OUTBOX <= labels
    assert "accounts.Tenant" not in labels and "numbers.PhoneNumber" not in labels


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda m: m.__name__)
def test_every_tenant_owned_models_default_manager_is_the_scoped_one(model):
    # a new model with a tenant foreign key fails here until it has both managers
    assert isinstance(model._default_manager, TenantScopedManager)
    assert model._default_manager is model.objects
    assert type(model.unscoped) is models.Manager
    assert type(model._base_manager) is models.Manager  # related access and cascades stay unfiltered


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

    assert rows or model._meta.label not in IN_THE_WORLD, f"the world has no {model.__name__} for A"
    assert {row.tenant_id for row in rows} <= {world.a.tenant.pk}
    assert asked_for_b == 0


@pytest.mark.parametrize("model", TENANT_OWNED, ids=lambda m: m.__name__)
def test_it_sees_every_tenant_through_the_explicit_unscoped_manager(world, model):
    tenants = set(model.unscoped.values_list("tenant_id", flat=True))

    assert {world.a.tenant.pk, world.b.tenant.pk} <= tenants or model._meta.label not in IN_THE_WORLD


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


def test_a_service_runs_under_its_tenant_and_refuses_another_tenants_context(world):
    # given a selector that takes tenant= (tenant_scoped)
    from accounts import selectors

    # when called without a context, it runs under its tenant: the scoped manager sees A's rows only
    keys = list(selectors.api_key_list(tenant=world.a.tenant))
    assert keys and {key.tenant_id for key in keys} == {world.a.tenant.pk}
    assert current_tenant() is None
    # and under A's context, for B, it refuses instead of acting across tenants
    with tenant_context(world.a.tenant), pytest.raises(tenancy.TenantContextMismatch):
        selectors.api_key_list(tenant=world.b.tenant)


def test_all_tenants_lets_staff_see_every_tenant_and_a_tenant_context_inside_narrows_it(world):
    with tenancy.all_tenants():
        every = set(ApiKey.objects.values_list("tenant_id", flat=True))
        with tenant_context(world.b.tenant):
            only_b = set(ApiKey.objects.values_list("tenant_id", flat=True))

    assert {world.a.tenant.pk, world.b.tenant.pk} <= every
    assert only_b == {world.b.tenant.pk}
    with pytest.raises(TenantContextMissing):
        ApiKey.objects.count()


def test_a_tenant_task_runs_under_the_tenant_it_names(world):
    # given a task on the tenant-aware base
    from celery import shared_task

    from smsportal.tasks import TenantTask

    @shared_task(base=TenantTask)
    def count_keys(*, tenant_id: int) -> tuple[int | None, int]:
        return current_tenant().pk, ApiKey.objects.count()

    # when it runs for A; then it sees A's keys only, and the context ends with it
    assert count_keys.apply(kwargs={"tenant_id": world.a.tenant.pk}).get() == (
        world.a.tenant.pk, ApiKey.unscoped.filter(tenant=world.a.tenant).count())
    assert current_tenant() is None
    # and without a tenant it fails instead of running unscoped
    assert count_keys.apply(kwargs={}).failed()
