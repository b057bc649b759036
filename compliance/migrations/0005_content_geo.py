"""Content rules, allowed domains, content flags, geo permissions and their approval queue (docs/compliance.md,
"Content policy and geo permissions").

Data: the starting content rules from compliance/data/content_rules.json (a slug already there is left alone,
so an account manager's edit survives a re-run), and for every tenant that exists now, its medium-risk countries
enabled (rules of 0003 that need no approval): these tenants sent anywhere before, and turning off where they
already send would break them; new tenants start with home + low-risk only. High-risk and approval countries
stay off for everyone until the owner enables them (and an account manager approves)."""
import json
from pathlib import Path

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "content_rules.json"
RULE_FIELDS = ("category", "kind", "pattern", "countries", "message_types", "action", "reason")


def _seed(apps, schema_editor):
    ContentRule = apps.get_model("compliance", "ContentRule")
    for rule in json.loads(RULES_FILE.read_text(encoding="utf-8"))["rules"]:
        ContentRule.objects.get_or_create(slug=rule["slug"], defaults={name: rule[name] for name in RULE_FIELDS})
    Tenant = apps.get_model("accounts", "Tenant")
    CountryRule = apps.get_model("compliance", "CountryRule")
    GeoPermission = apps.get_model("compliance", "GeoPermission")
    medium = list(CountryRule.objects.filter(risk="medium", approval_required=False).values_list("iso", flat=True))
    GeoPermission.objects.bulk_create(
        [GeoPermission(tenant_id=tenant_id, country=iso, enabled=True)
         for tenant_id in Tenant.objects.values_list("pk", flat=True) for iso in medium],
        ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0012_tenant_country'),
        ('compliance', '0004_quiet_fraud'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ContentRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.SlugField(help_text="The rule's id, shown in a refusal.", max_length=64, unique=True)),
                ('category', models.CharField(help_text='shaft, phishing, shortener, opt_out_missing, signature_missing, template_missing, ...', max_length=32)),
                ('kind', models.CharField(choices=[('regex', 'Regular expression'), ('domains', 'Link domains'), ('required', 'Required element missing')], max_length=16)),
                ('pattern', models.TextField(blank=True, help_text='regex: the expression; domains: one host a line; required: unused.')),
                ('countries', models.JSONField(blank=True, default=list, help_text='ISO codes it applies to, e.g. ["US"]; [] = every country.')),
                ('message_types', models.JSONField(blank=True, default=list, help_text='Message types it applies to, e.g. ["marketing"]; [] = every type.')),
                ('action', models.CharField(choices=[('block', 'Block (422 content_policy_violation)'), ('flag', 'Flag (send, and record a flag for review)')], default='block', max_length=8)),
                ('reason', models.CharField(help_text='Why, in words a sender can act on (shown in the refusal).', max_length=300)),
                ('enabled', models.BooleanField(default=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['slug'],
                'constraints': [models.CheckConstraint(condition=models.Q(('kind__in', ['regex', 'domains', 'required'])), name='content_rule_kind_valid'), models.CheckConstraint(condition=models.Q(('action__in', ['block', 'flag'])), name='content_rule_action_valid')],
            },
        ),
        migrations.CreateModel(
            name='AllowedDomain',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('domain', models.CharField(help_text='A host name, lower case, e.g. go.example.com.', max_length=253)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['domain'],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'domain'), name='allowed_domain_unique')],
            },
        ),
        migrations.CreateModel(
            name='ContentFlag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rule_slug', models.SlugField(max_length=64)),
                ('category', models.CharField(max_length=32)),
                ('to', models.CharField(max_length=20)),
                ('country', models.CharField(blank=True, max_length=2)),
                ('message_type', models.CharField(max_length=16)),
                ('excerpt', models.CharField(max_length=160)),
                ('reviewed', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['tenant', 'created_at'], name='compliance__tenant__fcf335_idx')],
            },
        ),
        migrations.CreateModel(
            name='GeoApprovalRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('country', models.CharField(max_length=2)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected')], default='pending', max_length=8)),
                ('reason', models.TextField(blank=True, help_text="The account manager's reason for the decision.")),
                ('reviewed_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('reviewed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('tenant', 'country'), name='geo_approval_one_pending')],
            },
        ),
        migrations.CreateModel(
            name='GeoPermission',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('country', models.CharField(help_text='ISO 3166-1 alpha-2, upper case.', max_length=2)),
                ('enabled', models.BooleanField()),
                ('approved_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.tenant')),
            ],
            options={
                'ordering': ['country'],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'country'), name='geo_permission_unique')],
            },
        ),
        migrations.RunPython(_seed, migrations.RunPython.noop),
    ]
