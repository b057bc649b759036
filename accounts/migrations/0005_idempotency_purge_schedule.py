"""Beat schedule for the idempotency record purge (hourly), editable in admin (Periodic tasks)."""
from django.db import migrations

TASK = "accounts.tasks.idempotency_records_purge_task"


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(
        name="Purge idempotency records",
        defaults={"task": TASK, "interval": every,
                  "description": "accounts: delete Idempotency-Key records older than IDEMPOTENCY_TTL_HOURS, "
                                 "in bounded batches."},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_idempotency_records"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
