"""App config for messaging (filled in by its own issue)."""
from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
