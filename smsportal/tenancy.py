"""Tenant context and the fail-closed manager for tenant-owned models.

API authentication, the portal middleware and tenant-aware tasks (smsportal/tasks.py) set the
active tenant, and every service or selector that takes `tenant=` runs under it (`tenant_scoped`).
`Model.objects` on a tenant-owned model is Django's default manager: it refuses to run without an
active tenant and filters by it. The explicit escapes, each listed with its reason in
accounts/tests/test_unscoped_places.py, are `Model.unscoped` (one cross-tenant query: key lookup,
sweeps, carrier receipts, the shared number inventory) and `all_tenants()` (the admin site: staff
see every tenant). Django's base manager stays plain, so related-object access and cascades work.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from django.db import models

if TYPE_CHECKING:
    from accounts.models import Tenant

# The tenant model, named like AUTH_USER_MODEL: the core sits below accounts and never imports it.
TENANT_MODEL = "accounts.Tenant"

P = ParamSpec("P")
R = TypeVar("R")

_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("current_tenant", default=None)
_all_tenants: contextvars.ContextVar[bool] = contextvars.ContextVar("all_tenants", default=False)


class TenantContextMissing(RuntimeError):
    """A tenant-scoped query ran without an active tenant."""


class TenantContextMismatch(RuntimeError):
    """Code running for one tenant called a service for another."""


def current_tenant() -> Tenant | None:
    return _current_tenant.get()


def set_current_tenant(tenant: Tenant | None) -> contextvars.Token:
    return _current_tenant.set(tenant)


def reset_current_tenant(token: contextvars.Token) -> None:
    _current_tenant.reset(token)


@contextlib.contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[None]:
    token = _current_tenant.set(tenant)
    try:
        yield
    finally:
        _current_tenant.reset(token)


@contextlib.contextmanager
def all_tenants() -> Iterator[None]:
    """Staff work across tenants (the admin site): `objects` filters by no tenant unless a tenant
    context is entered inside (a service the admin calls for one tenant still runs scoped to it)."""
    token = _all_tenants.set(True)
    try:
        yield
    finally:
        _all_tenants.reset(token)


def tenant_scoped(function: Callable[P, R]) -> Callable[P, R]:
    """Runs a service or selector under its keyword argument `tenant`.

    With no active tenant (a test, the admin, a management command, a sweep acting for one tenant)
    it enters that tenant's context; under the same tenant it just runs; under another tenant it
    raises TenantContextMismatch rather than act across tenants. `tenant=None` (platform events)
    runs without a context, so a scoped query there still fails closed."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        tenant = kwargs.get("tenant")
        active = _current_tenant.get()
        if tenant is None or (active is not None and active.pk == tenant.pk):
            return function(*args, **kwargs)
        if active is not None:
            raise TenantContextMismatch(f"{function.__qualname__} called for tenant {tenant.pk} under {active.pk}")
        with tenant_context(tenant):
            return function(*args, **kwargs)

    return run


class TenantScopedManager(models.Manager):
    """Filters by the active tenant; raises when there is none (fail closed)."""

    def get_queryset(self) -> models.QuerySet[Any]:
        tenant = _current_tenant.get()
        if tenant is not None:
            return super().get_queryset().filter(tenant=tenant)
        if _all_tenants.get():
            return super().get_queryset()
        raise TenantContextMissing(f"{self.model.__name__}.objects used without an active tenant")

    def none(self) -> models.QuerySet[Any]:
        # An empty queryset cannot leak a row; tools such as the schema generator ask for one.
        return super().get_queryset().none()
