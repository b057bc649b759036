"""Beat schedule for recording the usage of open holdings (daily at 00:05 UTC), editable in admin (Periodic tasks)."""
from django.db import migrations

TASK = "numbers.tasks.numbers_usage_record_open_task"


def forwards(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Five minutes past midnight: the day just ended is complete, and the minute sweep has had time
    # to release the leases that ended before midnight (they are recorded by the release instead).
    daily, _ = CrontabSchedule.objects.get_or_create(minute="5", hour="0", day_of_week="*", day_of_month="*",
                                                     month_of_year="*", timezone="UTC")
    PeriodicTask.objects.get_or_create(
        name="Record the usage of open number holdings",
        defaults={"task": TASK, "crontab": daily, "queue": "default",
                  "description": "numbers: usage rows of every assignment and lease still open, up to the last "
                                 "UTC midnight, so a period can be billed before its holdings end."},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("numbers", "0005_usage_recorded_until"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
