"""App config for numbers (filled in by its own issue)."""
from django.apps import AppConfig


class NumbersConfig(AppConfig):
    name = "numbers"
