"""The Celery task base for tasks that act for one tenant."""
from __future__ import annotations

from typing import Any

from celery import Task
from django.apps import apps

from smsportal.tenancy import TENANT_MODEL, tenant_context


class TenantTask(Task):
    """A task that acts for one tenant takes its id as the keyword argument `tenant_id`, and its body
    runs under that tenant's context (smsportal/tenancy.py), as an API request's view does. A task
    without `tenant_id`, or for a tenant that is gone, fails instead of running unscoped."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tenant = apps.get_model(TENANT_MODEL)._default_manager.get(pk=kwargs["tenant_id"])
        with tenant_context(tenant):
            return super().__call__(*args, **kwargs)
