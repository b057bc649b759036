"""The webhook models now belong to the `events` app (smsportal/events): gone from messaging's state only.

No table is dropped: events/0001 takes them over under their current names (Meta.db_table).
"""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0010_drop_redundant_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name='WebhookAttempt'),
            migrations.DeleteModel(name='WebhookDelivery'),
            migrations.DeleteModel(name='WebhookEndpoint'),
            migrations.DeleteModel(name='WebhookCallbackSecret'),
        ]),
    ]
