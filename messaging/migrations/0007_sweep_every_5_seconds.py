"""The message sweeper runs every 5 s (was 15 s): it now also hands over messages whose dispatch task
never reached the broker, and retries that wait in the database, so its interval bounds their delay."""
from django.db import migrations
from django.utils import timezone

TASK = "messaging.tasks.messages_sweep_task"


def _every(apps, seconds: int) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.filter(task=TASK).update(interval=every)
    # A running beat re-reads its schedule when this stamp moves (update() sends no signal).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()})


def forwards(apps, schema_editor):
    _every(apps, 5)


def backwards(apps, schema_editor):
    _every(apps, 15)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0006_message_enqueued_at"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
