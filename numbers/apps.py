"""App config for numbers: registers the event types it emits and its Celery countdown."""
from django.apps import AppConfig


class NumbersConfig(AppConfig):
    name = "numbers"

    def ready(self) -> None:
        # Names its longest Celery countdown (the lease notice) when imported: smsportal/countdowns.py.
        from numbers import (
            events,
            services,  # noqa: F401
        )

        from smsportal.events.registry import event_types_register

        event_types_register(*events.NUMBER_EVENT_TYPES)

        from numbers import retention

        from compliance.hooks import redactor_register

        # inbound bodies for compliance's retention sweep and erasure requests (compliance/hooks.py)
        redactor_register(name="inbound", expire=retention.inbound_bodies_expire, erase=retention.inbound_bodies_erase)
