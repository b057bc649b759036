#!/usr/bin/env python3
"""The floor of the send benchmarks: the least a Django + DRF accept can cost on this box.

A DRF endpoint that validates `to` and `text` and inserts one row, served by gunicorn sync workers
on the same PostgreSQL, loaded by the same client as bench/send.py at the same concurrency. Every
speed figure of ours is quoted beside this one, measured in the same run, since the box is shared
and noisy: the ratio is the figure that means something.

    python3 bench/floor.py --database-url postgres://postgres@127.0.0.1:5432/smsportal -n 4000 -c 20

Prints one JSON line. It creates its own table (bench_floor_message) and drops it at the end; it
talks to the database and to its own server on loopback, nothing else. Run it with the project's
virtualenv (it needs Django, DRF, gunicorn and psycopg).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = "bench_floor_message"
INSERT = f'INSERT INTO {TABLE} (public_id, "to", text) VALUES (%s, %s, %s) RETURNING id'  # noqa: S608 (a constant)


# --- The server side: a minimal Django project, configured when gunicorn imports `application` ------

def _database(url: str) -> dict:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit("the floor runs on PostgreSQL: give a postgres:// URL")
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": str(parts.port or ""),
            # As our own settings do for WSGI servers: one connection per worker, kept.
            "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}


def build_application():
    """The WSGI application gunicorn serves (BENCH_FLOOR_DATABASE_URL names the database)."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, SECRET_KEY="bench-floor-" + "x" * 50, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        DATABASES={"default": _database(os.environ["BENCH_FLOOR_DATABASE_URL"])},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        MIDDLEWARE=[], USE_TZ=True,
        REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": [], "DEFAULT_PERMISSION_CLASSES": [],
                        "UNAUTHENTICATED_USER": None,
                        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
                        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"]},
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _views():
    from django.db import connection
    from rest_framework import serializers, status
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class MessageIn(serializers.Serializer):
        to = serializers.RegexField(r"^\+[1-9]\d{6,14}$")
        text = serializers.CharField(max_length=1600)

    class Messages(APIView):
        def post(self, request):
            data = MessageIn(data=request.data)
            data.is_valid(raise_exception=True)
            with connection.cursor() as cursor:
                cursor.execute(INSERT, ["msg_" + uuid.uuid4().hex, data.validated_data["to"], data.validated_data["text"]])
                row_id = cursor.fetchone()[0]
            return Response({"id": row_id, "status": "queued"}, status=status.HTTP_202_ACCEPTED)

    return Messages


if os.environ.get("BENCH_FLOOR_DATABASE_URL"):  # imported by gunicorn: be the app
    application = build_application()
    from django.urls import path

    urlpatterns = [path("v1/messages", _views().as_view())]


# --- The driver: table, server, load ----------------------------------------------------------------

def run(*, database_url: str, count: int, concurrency: int, workers: int, around=None) -> dict:
    """Start the floor server, send `count` POSTs at `concurrency`, stop it; the figures as a dict.
    `around(port)`: a context manager wrapped around the measured load (bench/accept_cpu.py reads CPU)."""
    sys.path.insert(0, str(HERE))
    from send import Api, load
    from stack import free_port, sql, stopped, wait_listening

    sql(database_url, f"DROP TABLE IF EXISTS {TABLE}")
    sql(database_url, f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, public_id text UNIQUE NOT NULL, "
                       f"\"to\" text NOT NULL, text text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    port = free_port()
    env = {**os.environ, "BENCH_FLOOR_DATABASE_URL": database_url}
    server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "gunicorn", "floor:application", "--chdir", str(HERE), "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--worker-class", "sync", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, server)
        api = Api(f"http://127.0.0.1:{port}", key="floor")
        body = {"to": "+14155550123", "text": "Your code is 123456"}
        load(api, "/v1/messages", lambda _: body, count=min(200, count), concurrency=concurrency)  # warm up
        with around(port) if around else contextlib.nullcontext():
            figures = load(api, "/v1/messages", lambda _: body, count=count, concurrency=concurrency)
        figures.pop("answers")
    finally:
        stopped(server)
        sql(database_url, f"DROP TABLE IF EXISTS {TABLE}")
    return {"what": "floor", "server": f"gunicorn sync -w {workers}", **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL (default: $DATABASE_URL)")
    parser.add_argument("-n", "--count", type=int, default=4000)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("-w", "--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    print(json.dumps(run(database_url=args.database_url, count=args.count, concurrency=args.concurrency,
                         workers=args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
