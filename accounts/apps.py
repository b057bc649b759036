"""App config for accounts: tenants, people, keys, allowlists, audit."""
from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
