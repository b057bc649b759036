"""The ledger is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE of its rows (SQLite: no-op)."""
from django.db import migrations

CREATE = """
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'billing_ledgerentry is append-only: ' || TG_OP || ' refused',
                          ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER billing_ledger_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_balance_ledgerentry")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
