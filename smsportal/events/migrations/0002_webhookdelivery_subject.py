"""WebhookDelivery.subject: the public id of what the event is about, instead of a foreign key to a
message (this layer must not know messaging). Filled from the payloads in 0003; the key goes in 0004."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookdelivery',
            name='subject',
            field=models.CharField(blank=True, default='', max_length=40),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['tenant', 'subject'], name='messaging_w_tenant__08593a_idx'),
        ),
    ]
