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
        _routing_cache_follows_changes()
        _retention_register()


def _routing_cache_follows_changes() -> None:
    """A carrier, route, circuit or quality row saved or deleted (admin, loader, beat) is in use at once here,
    and within ROUTING_CACHE_SECONDS in every other process (messaging/routing/cache.py)."""
    from django.db.models.signals import post_delete, post_save

    from messaging.routing import cache
    from messaging.routing.models import Carrier, Route, RouteCircuit, RouteQuality

    for model in (Carrier, Route, RouteCircuit, RouteQuality):
        post_save.connect(cache.routing_cache_clear, sender=model, dispatch_uid=f"routing-cache-{model.__name__}")
        post_delete.connect(cache.routing_cache_clear, sender=model, dispatch_uid=f"routing-cache-{model.__name__}-del")


def _retention_register() -> None:
    """Message bodies for compliance's retention sweep and erasure requests, and the cancel of waiting messages at
    an opt-out (compliance/hooks.py)."""
    from compliance.hooks import opt_out_listener_register, redactor_register
    from messaging import opt_outs, retention

    redactor_register(name="messages", expire=retention.message_bodies_expire, erase=retention.message_bodies_erase)
    opt_out_listener_register(opt_outs.messages_cancel_opted_out)  # waiting messages to an opted-out number
