"""Beat schedule for releasing expired leases (every minute), editable in admin (Periodic tasks)."""
from django.db import migrations

TASK = "numbers.tasks.numbers_release_expired_leases_task"


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="Release expired number leases (quarantine, then back to the pool)",
        defaults={"task": TASK, "interval": every, "queue": "default",
                  "description": "numbers: leases past their end -> released, number quarantined; "
                                 "quarantined numbers past their cool-down -> available."},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("numbers", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
