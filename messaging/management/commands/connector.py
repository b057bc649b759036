"""manage.py connector: the SMPP connector process (messaging/connector/service.py); run one or more."""
import signal

from django.core.management.base import BaseCommand, CommandError

from messaging.connector.service import Connector, ConnectorLocked, default_name


class Command(BaseCommand):
    help = "Bind to every enabled SMPP carrier and send the attempts dispatch hands over; one or more per host."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="", help="This process's name (default CONNECTOR_NAME or the host "
                                                       "name); unique per process: a restart takes over its claims.")
        parser.add_argument("--carrier", action="append", default=[], help="Only this carrier (repeatable).")

    def handle(self, *args, **options) -> None:
        stopping = []
        # SIGTERM (honcho, systemd): stop claiming, let the sessions answer what is in flight, store, exit.
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        name = options["name"] or default_name()
        self.stdout.write(f"connector {name}: serving SMPP carriers")
        try:
            Connector(name=name, carriers=options["carrier"]).run(stop=lambda: bool(stopping))
        except ConnectorLocked as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"connector {name}: stopped")
