"""App config for messaging: registers its event types and the hooks it fills in the apps below it."""
from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        from messaging import events, hooks
        from smsportal.events.registry import event_types_register

        event_types_register(*events.MESSAGE_EVENT_TYPES)
        hooks.register()
