"""A CHECK that an API key's daily spend cap is never negative (empty: no cap; docs/billing.md).

A negative cap typed before this meant "refuse every live send of the key": it becomes 0, which means the same."""

from django.db import migrations, models


def _negative_caps_to_zero(apps, schema_editor):
    apps.get_model("accounts", "ApiKey").objects.filter(daily_spend_cap__lt=0).update(daily_spend_cap=0)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0010_api_key_daily_spend_cap'),
    ]

    operations = [
        migrations.RunPython(_negative_caps_to_zero, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(('daily_spend_cap__isnull', True), ('daily_spend_cap__gte', 0), _connector='OR'), name='api_key_daily_spend_cap_not_negative'),
        ),
    ]
