"""manage.py dispatcher: hand committed queued messages to dispatch in batches (messaging/dispatcher.py)."""
import signal

from django.core.management.base import BaseCommand

from messaging.dispatcher import dispatcher_run


class Command(BaseCommand):
    help = "Claim queued messages in batches (SKIP LOCKED) and publish one dispatch task per claim; run one or more."

    def handle(self, *args, **options) -> None:
        stopping = []
        # SIGTERM (honcho, systemd) ends the loop between rounds: a claim is never left half published.
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        self.stdout.write("dispatcher: handing over queued messages")
        dispatcher_run(stop=lambda: bool(stopping))
