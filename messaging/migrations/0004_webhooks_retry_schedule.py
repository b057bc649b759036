"""Beat schedule for webhook retries (every 15 s, on the webhooks queue), editable in admin (Periodic tasks)."""
from django.db import migrations

TASK = "messaging.webhooks.tasks.webhooks_retry_due_task"


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=15, period="seconds")
    PeriodicTask.objects.get_or_create(
        name="Retry due webhook deliveries",
        defaults={"task": TASK, "interval": every, "queue": "webhooks",
                  "description": "messaging.webhooks: enqueue deliveries whose next attempt is due (waits longer "
                                 "than a minute live in the database, not in broker countdowns)."},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("messaging", "0003_webhooks"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
