"""smsportal/pgloaders.py: timestamps load through psycopg's compiled loader, with Django's values."""
from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from smsportal import pgloaders

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL loader")]

LITERALS = ["2026-12-03 14:05:06.123456+00", "1999-12-31 23:59:59.999999+00", "2026-03-29 01:30:00+02",
            "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00", "2026-06-01 12:00:00-07:30"]
QUERY = "SELECT " + ", ".join(f"'{literal}'::timestamptz" for literal in LITERALS)


def test_a_utc_connection_loads_timestamps_with_the_fast_loader():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    assert loader.__name__ == "FastUtcLoader"
    assert loader.timezone == connection.timezone == datetime.UTC  # Django's create_cursor keeps it


def test_it_loads_the_values_djangos_loader_does():
    with connection.cursor() as cursor:
        cursor.execute(QUERY)
        fast = cursor.fetchone()
    with connection.cursor() as cursor:
        register_tzloader(datetime.UTC, cursor.cursor)  # Django's own, on this cursor only
        assert cursor.cursor.adapters.get_loader(1184, 0).__name__ == "SpecificTzLoader"
        cursor.execute(QUERY)
        django = cursor.fetchone()
    assert fast == django
    assert [value.tzinfo for value in fast] == [datetime.UTC] * len(LITERALS)
    assert fast[2] == datetime.datetime(2026, 3, 28, 23, 30, tzinfo=datetime.UTC)


def test_another_time_zone_keeps_djangos_loader():
    class Other:  # a connection in another zone: left alone (its psycopg connection, None, is never touched)
        vendor, timezone_name, timezone = "postgresql", "Europe/Paris", datetime.UTC
        connection = None

    pgloaders.fast_timestamps(sender=None, connection=Other())
