"""psycopg's C loader for `timestamptz`, in place of Django's pure-Python one, on UTC connections.

Django's PostgreSQL backend loads every `timestamptz` through `BaseTzLoader`, a Python subclass of psycopg's
`TimestamptzLoader`, so psycopg's compiled loader is never used: about 3 µs a value against 0.3 µs. A message
row has nine timestamps, and the connector's writer and the workers load thousands of rows a second
(docs/performance.md). Django's loader only replaces the tzinfo with the connection's time zone, which is UTC
here (USE_TZ, TIME_ZONE "UTC": Django sets the session's TimeZone so), and psycopg's own loader already gives
`datetime.timezone.utc` for a UTC session: the same values, loaded by compiled code.

`FastUtcLoader` keeps Django's class (its `timezone` attribute is what Django's `create_cursor` checks, so it
keeps the connection's loader) and hands each value to the compiled loader. It is registered on each new
connection whose time zone is UTC (`connection_created`); any other time zone keeps Django's loader.
"""
from __future__ import annotations

import datetime

from django.db.backends.signals import connection_created


def fast_loader_class():
    """Django's loader class with psycopg's compiled (or, without psycopg's C module, pure) loader inside."""
    import psycopg
    from django.db.backends.postgresql.psycopg_any import BaseTzLoader
    from psycopg.pq import Format

    compiled = psycopg.adapters.get_loader(psycopg.adapters.types["timestamptz"].oid, Format.TEXT)

    class FastUtcLoader(BaseTzLoader):
        timezone = datetime.UTC

        def __init__(self, oid, context=None) -> None:
            super().__init__(oid, context)
            self._load = compiled(oid, context).load

        def load(self, data):
            return self._load(data)

    return FastUtcLoader


_loader = None


def fast_timestamps(sender, connection, **kwargs) -> None:
    global _loader
    if connection.vendor != "postgresql" or connection.timezone_name != "UTC" or connection.timezone != datetime.UTC:
        return
    if connection.connection.info.parameter_status("TimeZone") not in ("UTC", "Etc/UTC"):
        return  # the session's zone is what psycopg's loader applies: only UTC gives Django's values
    _loader = _loader or fast_loader_class()
    connection.connection.adapters.register_loader("timestamptz", _loader)


def register() -> None:
    connection_created.connect(fast_timestamps, dispatch_uid="smsportal-fast-timestamps")
