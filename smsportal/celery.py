"""The Celery application; configuration comes from Django settings (CELERY_*)."""
import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")

app = Celery("smsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _countdowns_checked(**kwargs) -> None:
    """A worker refuses to start when a countdown could outlive half the broker's visibility timeout
    (smsportal/countdowns.py). SystemExit, because Celery logs and ignores a signal handler's exceptions."""
    from smsportal.countdowns import countdowns_too_long

    problems = countdowns_too_long()
    if problems:
        logging.getLogger("smsportal.celery").critical("refusing to start: %s", "; ".join(problems))
        raise SystemExit("smsportal: " + "; ".join(problems))
