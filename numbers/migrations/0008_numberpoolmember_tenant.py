"""NumberPoolMember gets its own `tenant` (the pool's), backfilled, then required; the unique
constraint leads with it."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def tenant_from_pool(apps, schema_editor):
    member = apps.get_model("numbers", "NumberPoolMember")
    pool = apps.get_model("numbers", "NumberPool")
    pool_tenant = pool._default_manager.filter(pk=OuterRef("pool_id")).values("tenant_id")[:1]
    member._default_manager.update(tenant_id=Subquery(pool_tenant))


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("numbers", "0007_phonenumber_shared_sender"),
    ]

    operations = [
        migrations.AddField(
            model_name="numberpoolmember",
            name="tenant",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="accounts.tenant"),
        ),
        migrations.RunPython(tenant_from_pool, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="numberpoolmember",
            name="tenant",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="accounts.tenant"),
        ),
        migrations.RemoveConstraint(model_name="numberpoolmember", name="pool_member_once"),
        migrations.AddConstraint(
            model_name="numberpoolmember",
            constraint=models.UniqueConstraint(fields=("tenant", "pool", "number"), name="pool_member_once"),
        ),
    ]
