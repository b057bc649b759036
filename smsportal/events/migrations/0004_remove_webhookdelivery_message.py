"""The message foreign key goes: deliveries name their message by `subject` (filled in 0003)."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0003_subject_fill_and_renames'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='webhookdelivery',
            name='messaging_w_tenant__cecc04_idx',
        ),
        migrations.RemoveField(
            model_name='webhookdelivery',
            name='message',
        ),
    ]
