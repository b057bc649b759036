"""App config for messaging: registers its event types, its Celery countdowns and the hooks it fills in the
apps below it."""
from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        # pipeline and carriers.simulator name their longest Celery countdowns (smsportal/countdowns.py) on import.
        from messaging import (
            events,
            hooks,
            pipeline,  # noqa: F401
        )
        from messaging.carriers import simulator  # noqa: F401
        from smsportal.events.registry import event_types_register, fanout_expander_register

        event_types_register(*events.MESSAGE_EVENT_TYPES)
        fanout_expander_register("message.queued", events.message_queued_events)  # an accepted batch's
        hooks.register()
