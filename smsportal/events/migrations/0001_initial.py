"""The outbox models move from messaging to this app: state only, the tables stay where they are.

messaging/0011 deleted them from messaging's state without touching the database; this creates them
here, on the same tables (db_table), as messaging 0003/0004 left them. 0002 then replaces the message
foreign key by `subject`. From an empty database, messaging 0003 creates the tables and this runs after.
"""
import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models

import smsportal.ids


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0003_tenant_sending_limits'),
        ('messaging', '0011_webhooks_to_events'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='WebhookCallbackSecret',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('secret_encrypted', models.TextField(editable=False)),
                    ('secret_prefix', models.CharField(editable=False, help_text='The first characters, to tell secrets apart.', max_length=16)),
                    ('previous_secret_encrypted', models.TextField(blank=True, editable=False)),
                    ('previous_secret_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ('rotated_at', models.DateTimeField(blank=True, null=True)),
                    ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_callback_secret', to='accounts.tenant')),
                ],
                options={
                    'db_table': 'messaging_webhookcallbacksecret',
                    'default_manager_name': 'unscoped',
                },
                managers=[
                    ('unscoped', django.db.models.manager.Manager()),
                ],
            ),
            migrations.CreateModel(
                name='WebhookEndpoint',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('secret_encrypted', models.TextField(editable=False)),
                    ('secret_prefix', models.CharField(editable=False, help_text='The first characters, to tell secrets apart.', max_length=16)),
                    ('previous_secret_encrypted', models.TextField(blank=True, editable=False)),
                    ('previous_secret_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                    ('public_id', models.CharField(default=smsportal.ids.PublicId('whe'), editable=False, max_length=32, unique=True)),
                    ('url', models.CharField(max_length=2000)),
                    ('description', models.CharField(blank=True, max_length=200)),
                    ('events', models.JSONField(blank=True, default=list)),
                    ('enabled', models.BooleanField(default=True)),
                    ('consecutive_failures', models.PositiveIntegerField(default=0)),
                    ('disabled_reason', models.CharField(blank=True, max_length=200)),
                    ('disabled_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                    ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_endpoints', to='accounts.tenant')),
                ],
                options={
                    'db_table': 'messaging_webhookendpoint',
                    'ordering': ['-created_at', '-id'],
                    'default_manager_name': 'unscoped',
                },
                managers=[
                    ('unscoped', django.db.models.manager.Manager()),
                ],
            ),
            migrations.CreateModel(
                name='WebhookDelivery',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('public_id', models.CharField(default=smsportal.ids.PublicId('whd'), editable=False, max_length=32, unique=True)),
                    ('url', models.CharField(max_length=2000)),
                    ('event_type', models.CharField(max_length=40)),
                    ('event_id', models.CharField(default=smsportal.ids.PublicId('evt'), editable=False, max_length=40, unique=True)),
                    ('payload', models.JSONField()),
                    ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed'), ('blocked', 'Blocked')], default='pending', max_length=16)),
                    ('cycle', models.PositiveIntegerField(default=0)),
                    ('attempts', models.PositiveSmallIntegerField(default=0)),
                    ('next_attempt_at', models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True)),
                    ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                    ('last_status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('last_error_class', models.CharField(blank=True, max_length=40)),
                    ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                    ('delivered_at', models.DateTimeField(blank=True, null=True)),
                    ('message', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='webhook_deliveries', to='messaging.message')),
                    ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                    ('endpoint', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='events.webhookendpoint')),
                ],
                options={
                    'db_table': 'messaging_webhookdelivery',
                    'verbose_name_plural': 'webhook deliveries',
                    'ordering': ['-created_at', '-id'],
                    'default_manager_name': 'unscoped',
                },
                managers=[
                    ('unscoped', django.db.models.manager.Manager()),
                ],
            ),
            migrations.CreateModel(
                name='WebhookAttempt',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('cycle', models.PositiveIntegerField(default=0)),
                    ('number', models.PositiveSmallIntegerField()),
                    ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('latency_ms', models.PositiveIntegerField(blank=True, null=True)),
                    ('error_class', models.CharField(blank=True, max_length=40)),
                    ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
                    ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='events.webhookdelivery')),
                ],
                options={
                    'db_table': 'messaging_webhookattempt',
                    'ordering': ['delivery', 'cycle', 'number'],
                    'default_manager_name': 'unscoped',
                    'constraints': [models.UniqueConstraint(fields=('delivery', 'cycle', 'number'), name='webhook_attempt_unique_number')],
                },
                managers=[
                    ('unscoped', django.db.models.manager.Manager()),
                ],
            ),
            migrations.AddIndex(
                model_name='webhookendpoint',
                index=models.Index(fields=['tenant', '-created_at'], name='messaging_w_tenant__3591b6_idx'),
            ),
            migrations.AddIndex(
                model_name='webhookdelivery',
                index=models.Index(fields=['tenant', '-created_at'], name='messaging_w_tenant__807ae7_idx'),
            ),
            migrations.AddIndex(
                model_name='webhookdelivery',
                index=models.Index(fields=['tenant', 'endpoint', '-created_at'], name='messaging_w_tenant__f06b3e_idx'),
            ),
            migrations.AddIndex(
                model_name='webhookdelivery',
                index=models.Index(fields=['tenant', 'message'], name='messaging_w_tenant__cecc04_idx'),
            ),
            migrations.AddIndex(
                model_name='webhookdelivery',
                index=models.Index(condition=models.Q(('status', 'pending')), fields=['next_attempt_at'], name='webhook_delivery_due'),
            ),
            migrations.AddConstraint(
                model_name='webhookdelivery',
                constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'delivered', 'failed', 'blocked'])), name='webhook_delivery_status_valid'),
            ),
        ]),
    ]
