"""App config for the event outbox: its models keep their tables from when they lived in messaging."""
from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "smsportal.events"
    label = "events"
    verbose_name = "Events and webhooks"

    def ready(self) -> None:
        # Names its longest Celery countdown (smsportal/countdowns.py) when imported.
        from django.db.models.signals import post_delete, post_save

        from smsportal.events import delivery  # noqa: F401
        from smsportal.events.models import WebhookEndpoint
        from smsportal.events.selectors import endpoints_cache_clear

        # A saved or deleted endpoint is in force at once in this process (event_subscribers_cached).
        post_save.connect(endpoints_cache_clear, sender=WebhookEndpoint, dispatch_uid="endpoints-cache-save")
        post_delete.connect(endpoints_cache_clear, sender=WebhookEndpoint, dispatch_uid="endpoints-cache-delete")
