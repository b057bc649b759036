"""Data: each delivery's subject from its payload (`data.id`: the message, inbound message or holding it
is about); the content types and the beat task of the webhook models follow them to this app."""
from django.db import migrations
from django.db.models import Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

MODELS = ("webhookendpoint", "webhookcallbacksecret", "webhookdelivery", "webhookattempt")
OLD_TASK = "messaging.webhooks.tasks.webhooks_retry_due_task"
NEW_TASK = "smsportal.events.tasks.webhooks_retry_due_task"


def forwards(apps, schema_editor):
    apps.get_model("events", "WebhookDelivery")._base_manager.update(
        subject=Coalesce(KT("payload__data__id"), Value("")))
    # Same rows, new app: admin log entries and permissions keep pointing at the right model.
    apps.get_model("contenttypes", "ContentType").objects.filter(app_label="messaging", model__in=MODELS).update(
        app_label="events")
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=OLD_TASK).update(task=NEW_TASK)


def backwards(apps, schema_editor):
    apps.get_model("contenttypes", "ContentType").objects.filter(app_label="events", model__in=MODELS).update(
        app_label="messaging")
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=NEW_TASK).update(task=OLD_TASK)


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_webhookdelivery_subject'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
