"""App config for the event outbox: its models keep their tables from when they lived in messaging."""
from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "smsportal.events"
    label = "events"
    verbose_name = "Events and webhooks"

    def ready(self) -> None:
        # Names its longest Celery countdown (smsportal/countdowns.py) when imported.
        from smsportal.events import delivery  # noqa: F401
