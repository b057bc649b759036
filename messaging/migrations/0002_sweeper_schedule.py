"""Beat schedule for the message sweeper (every 15 s), editable in admin (Periodic tasks)."""
from django.db import migrations

TASK = "messaging.tasks.messages_sweep_task"


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=15, period="seconds")
    PeriodicTask.objects.get_or_create(
        name="Sweep messages (release scheduled, expire, re-enqueue stuck)",
        defaults={"task": TASK, "interval": every, "queue": "default",
                  "description": "messaging: scheduled -> queued when due; queued past validity -> expired; "
                                 "stuck queued/sending -> dispatched again."},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("messaging", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
