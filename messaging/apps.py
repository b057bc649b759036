"""App config for messaging."""
from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        # These modules name their longest Celery countdowns (smsportal/countdowns.py) when imported.
        from messaging import pipeline  # noqa: F401
        from messaging.carriers import simulator  # noqa: F401
        from messaging.webhooks import delivery  # noqa: F401
