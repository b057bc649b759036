"""Tenant context and the fail-closed manager for tenant-owned models.

API authentication, the portal middleware and tenant-aware tasks set the
active tenant; `Model.objects` on a tenant-owned model refuses to run without
one, and filters by it. Admin, sweeps and allocators use the explicit
`Model.unscoped` manager (which is also Django's default manager, so admin,
relations and cascades keep working).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from accounts.models import Tenant

_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("current_tenant", default=None)


class TenantContextMissing(RuntimeError):
    """A tenant-scoped query ran without an active tenant."""


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


class TenantScopedManager(models.Manager):
    """Filters by the active tenant; raises when there is none (fail closed)."""

    def get_queryset(self) -> models.QuerySet[Any]:
        tenant = _current_tenant.get()
        if tenant is None:
            raise TenantContextMissing(f"{self.model.__name__}.objects used without an active tenant")
        return super().get_queryset().filter(tenant=tenant)

    def none(self) -> models.QuerySet[Any]:
        # An empty queryset cannot leak a row; tools such as the schema generator ask for one.
        return super().get_queryset().none()
