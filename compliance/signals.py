"""Cache invalidation only (STYLE.md): a country rule, fraud rule, allowance or quiet-hours setting saved in this
process clears the process cache the accept pipeline's checks read (compliance/countries.py, fraud.py, quiet_hours.py)."""
from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compliance import countries, fraud, quiet_hours
from compliance.models import CountryRule, FraudAllowance, FraudRule, QuietHoursSetting


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
