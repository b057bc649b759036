"""Set-based writes the ORM does not have: different values for many rows in one statement."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg
from django.conf import settings
from django.db import connection, models


def rows_update(*, model: type[models.Model], values: Mapping[int, Mapping[str, object]],
                common: Mapping[str, object] | None = None) -> int:
    """Set per-row `values` ({pk: {field: value}}, every row naming the same fields) and the `common`
    ones on those rows; returns how many rows changed.

    On PostgreSQL one `UPDATE ... FROM unnest(...)`: Django's bulk_update builds a CASE of one branch
    per row for each field, whose compilation costs more than the write for a batch of hundreds.
    Elsewhere (SQLite: `make run`, the default `make test`) bulk_update and an update."""
    if not values:
        return 0
    pks = list(values)
    names = list(next(iter(values.values())))
    manager = model._base_manager
    if connection.vendor != "postgresql":
        rows = [model(pk=pk, **values[pk]) for pk in pks]
        changed = manager.bulk_update(rows, names) if names else len(rows)
        if common:
            manager.filter(pk__in=pks).update(**common)
        return changed
    return _update_from_unnest(model, pks, names, values, dict(common or {}))


def _update_from_unnest(model, pks: list[int], names: list[str], values, common: dict) -> int:
    meta = model._meta
    table, pk_column = connection.ops.quote_name(meta.db_table), meta.pk.column
    fields = [meta.get_field(name) for name in names]
    arrays = [f"%s::{meta.pk.db_type(connection)}[]"] + [f"%s::{field.db_type(connection)}[]" for field in fields]
    columns = ["id", *(f"v{i}" for i in range(len(fields)))]
    assignments = [f"{connection.ops.quote_name(field.column)} = v.v{i}" for i, field in enumerate(fields)]
    params: list = [pks] + [[field.get_db_prep_save(values[pk][field.name], connection) for pk in pks]
                            for field in fields]
    for name in common:
        field = meta.get_field(name)
        assignments.append(f"{connection.ops.quote_name(field.column)} = %s")
    common_params = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in common.items()]
    statement = (f"UPDATE {table} SET {', '.join(assignments)} "  # noqa: S608 (names from the model's meta)
                 f"FROM unnest({', '.join(arrays)}) AS v({', '.join(columns)}) "
                 f"WHERE {table}.{connection.ops.quote_name(pk_column)} = v.id")
    # The SET's placeholders come before FROM's in the statement text.
    with connection.cursor() as cursor:
        cursor.execute(statement, common_params + params)
        return cursor.rowcount


def prepared_fetchone(sql: str, params: Sequence[object]) -> tuple | None:
    """Run one hot statement (PostgreSQL) prepared on the server, and return its first row.

    Django's cursors bind values on the client, so PostgreSQL parses and plans every statement
    afresh; the single send's insert (messaging/accept/store.py) is one large statement run on every
    request, whose parse and plan cost as much as its writes. Here it goes through a server-binding
    cursor with `prepare=True`: parsed and planned once per connection, its values sent apart from
    the text. Every placeholder needs its type cast in `sql` (`%s::bigint`), as nothing is quoted.

    With DB_PREPARED_STATEMENTS off (an old PgBouncer in transaction mode, which cannot keep prepared
    statements) the statement is still bound on the server, unprepared. Errors are Django's, and the
    statement shows in Django's query log as any other."""
    connection.validate_no_broken_transaction()
    connection.ensure_connection()
    prepare = bool(settings.DB_PREPARED_STATEMENTS)
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        if connection.queries_logged:
            with connection.make_debug_cursor(cursor).debug_sql(sql, params):
                cursor.execute(sql, params, prepare=prepare)
        else:
            cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchone()
