"""App config for numbers: registers the event types it emits."""
from django.apps import AppConfig


class NumbersConfig(AppConfig):
    name = "numbers"

    def ready(self) -> None:
        from numbers import events

        from smsportal.events.registry import event_types_register

        event_types_register(*events.NUMBER_EVENT_TYPES)
