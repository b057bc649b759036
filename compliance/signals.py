"""Cache invalidation only (STYLE.md): a country rule, content rule, allowed domain or geo permission saved or
deleted in this process clears the cache that holds it."""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compliance import content, countries, geo
from compliance.models import AllowedDomain, ContentRule, CountryRule, GeoPermission


@receiver([post_save, post_delete], sender=CountryRule, dispatch_uid="compliance.country_rules_cache_clear")
def country_rule_changed(**kwargs) -> None:
    countries.country_rules_cache_clear()


@receiver([post_save, post_delete], sender=ContentRule, dispatch_uid="compliance.content_rule_cache_clear")
@receiver([post_save, post_delete], sender=AllowedDomain, dispatch_uid="compliance.allowed_domain_cache_clear")
def content_changed(**kwargs) -> None:
    content.content_cache_clear()


@receiver([post_save, post_delete], sender=GeoPermission, dispatch_uid="compliance.geo_cache_clear")
def geo_permission_changed(**kwargs) -> None:
    geo.geo_cache_clear()
