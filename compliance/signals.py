"""Cache invalidation only (STYLE.md): a country rule saved or deleted in this process clears the rules cache."""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compliance import countries
from compliance.models import CountryRule


@receiver([post_save, post_delete], sender=CountryRule, dispatch_uid="compliance.country_rules_cache_clear")
def country_rule_changed(**kwargs) -> None:
    countries.country_rules_cache_clear()
