"""App config for numbers."""
from django.apps import AppConfig


class NumbersConfig(AppConfig):
    name = "numbers"

    def ready(self) -> None:
        # Names its longest Celery countdown (the lease notice) when imported: smsportal/countdowns.py.
        from numbers import services  # noqa: F401
