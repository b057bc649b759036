"""The tenant-owned models, from the app registry: every model with a `tenant` foreign key.

The cross-tenant snapshot and leak scan (test_cross_tenant.py) and the manager checks
(test_tenancy.py) take their models from here, so a model added later is covered without a test
change."""
from __future__ import annotations

from django.apps import apps
from django.db import models

from accounts.models import Tenant


def tenant_owned_models() -> list[type[models.Model]]:
    return sorted((model for model in apps.get_models() if _tenant_field(model) is not None),
                  key=lambda model: model._meta.label)


def _tenant_field(model: type[models.Model]) -> models.Field | None:
    field = next((f for f in model._meta.concrete_fields if f.name == "tenant"), None)
    return field if field is not None and field.is_relation and field.related_model is Tenant else None
