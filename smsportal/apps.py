"""The project's own app config: what the platform sets up in every process, whatever app it runs."""
from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "smsportal"
    verbose_name = "Platform"

    def ready(self) -> None:
        from smsportal import checks, pgloaders  # noqa: F401 - checks registers itself

        pgloaders.register()
