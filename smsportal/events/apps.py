"""App config for the event outbox: its models keep their tables from when they lived in messaging."""
from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "smsportal.events"
    label = "events"
    verbose_name = "Events and webhooks"
