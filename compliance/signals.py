"""Cache invalidation only (STYLE.md): a country rule, content rule, allowed domain, geo permission, fraud rule,
allowance or quiet-hours setting saved or deleted in this process clears the cache that holds it."""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compliance import consent, content, countries, fraud, geo, quiet_hours
from compliance.models import (
    AllowedDomain,
    ContentRule,
    CountryRule,
    FraudAllowance,
    FraudRule,
    GeoPermission,
    QuietHoursSetting,
)


@receiver([post_save, post_delete], sender=CountryRule, dispatch_uid="compliance.country_rules_cache_clear")
def country_rule_changed(**kwargs) -> None:
    countries.country_rules_cache_clear()


@receiver([post_save, post_delete], sender=FraudRule, dispatch_uid="compliance.fraud_rule_changed")
@receiver([post_save, post_delete], sender=FraudAllowance, dispatch_uid="compliance.fraud_allowance_changed")
def fraud_rules_changed(**kwargs) -> None:
    fraud.rules_cache_clear()


@receiver([post_save, post_delete], sender=QuietHoursSetting, dispatch_uid="compliance.quiet_hours_changed")
def quiet_hours_changed(**kwargs) -> None:
    quiet_hours.settings_cache_clear()


@receiver([post_save, post_delete], sender=ContentRule, dispatch_uid="compliance.content_rule_cache_clear")
@receiver([post_save, post_delete], sender=AllowedDomain, dispatch_uid="compliance.allowed_domain_cache_clear")
def content_changed(**kwargs) -> None:
    content.content_cache_clear()


@receiver([post_save, post_delete], sender=GeoPermission, dispatch_uid="compliance.geo_cache_clear")
def geo_permission_changed(**kwargs) -> None:
    geo.geo_cache_clear()


@receiver([post_save, post_delete], sender="compliance.ConsentRecord", dispatch_uid="compliance.consent_cache_clear")
@receiver([post_save, post_delete], sender="compliance.Suppression", dispatch_uid="compliance.suppression_cache_clear")
def consent_changed(instance=None, **kwargs) -> None:
    """A ledger record or suppression written outside the services (admin): the tenant is asked again."""
    consent.consent_cache_clear(getattr(instance, "tenant_id", None))
from compliance import sender_ids  # noqa: E402 - appended with sender IDs (issue 12 section 3)
from compliance.models import SenderId, SenderSettings  # noqa: E402


@receiver([post_save, post_delete], sender=SenderId, dispatch_uid="compliance.sender_ids_cache_clear")
@receiver([post_save, post_delete], sender=SenderSettings, dispatch_uid="compliance.sender_settings_cache_clear")
def sender_ids_changed(**kwargs) -> None:
    sender_ids.sender_ids_cache_clear()
