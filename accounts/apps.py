"""App config for accounts: tenants, people, keys, allowlists, audit."""
from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts import schema  # noqa: F401 - registers the OpenAPI auth extension
        from accounts.models import ApiKey, IpAllowlistEntry, Tenant
        from accounts.services.key_cache import key_cache_clear_on_change

        # A saved or deleted key, tenant or allowlist entry (a service, the admin) is in force in this
        # process at once; the key cache's TTL carries it to the others (accounts/services/key_cache.py).
        for model in (ApiKey, IpAllowlistEntry, Tenant):
            post_save.connect(key_cache_clear_on_change, sender=model, dispatch_uid=f"key-cache-{model.__name__}-save")
            post_delete.connect(key_cache_clear_on_change, sender=model, dispatch_uid=f"key-cache-{model.__name__}-delete")

