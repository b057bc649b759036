"""CHECKs that the daily spend caps and the day's spend figures are never negative (docs/billing.md).

A negative cap typed in admin before this meant "refuse every live send": it becomes 0, which means the same."""

from django.db import migrations, models


def _negative_caps_to_zero(apps, schema_editor):
    apps.get_model("billing", "Balance").objects.filter(daily_spend_cap__lt=0).update(daily_spend_cap=0)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_daily_spend_caps'),
    ]

    operations = [
        migrations.RunPython(_negative_caps_to_zero, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='apikeyspend',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gte', 0)), name='api_key_spend_amount_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='balance',
            constraint=models.CheckConstraint(condition=models.Q(('daily_spend_cap__isnull', True), ('daily_spend_cap__gte', 0), _connector='OR'), name='balance_daily_spend_cap_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='balance',
            constraint=models.CheckConstraint(condition=models.Q(('spent_today__gte', 0)), name='balance_spent_today_not_negative'),
        ),
    ]
