"""Beat schedules of routing: route quality and the costs in force, every minute, editable in admin."""
from django.db import migrations

TASKS = {
    "messaging.tasks.route_quality_rollup_task": ("Roll up route quality (15 min, 24 h) and open collapsed circuits",
                                                   "routing: delivery rate and receipt latency per route, from the attempts."),
    "messaging.tasks.route_costs_apply_task": ("Apply route costs in force (rate decks dated in the future)",
                                               "routing: each route's cost from its latest dated cost."),
}


def forwards(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    for task, (name, description) in TASKS.items():
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": every, "queue": "default",
                                                                "description": description})


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=list(TASKS)).delete()


class Migration(migrations.Migration):
    dependencies = [("messaging", "0013_routing"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(forwards, backwards)]
