from django.db import migrations, models


class Migration(migrations.Migration):
    """Invoice.held_unsettled: what was held for messages not yet settled at the period's end (shown on the
    invoice; those messages are billed in the month they are captured). Existing invoices get 0: ADD COLUMN
    with a default writes no row, so the frozen-invoice trigger (0009) is not fired."""

    dependencies = [
        ('billing', '0010_invoice_to_date'),
    ]

    operations = [
        migrations.AddField(
            model_name='invoice',
            name='held_unsettled',
            field=models.DecimalField(decimal_places=6, default=0,
                                      help_text="Held for messages not yet settled at the period's end.",
                                      max_digits=18),
        ),
    ]
