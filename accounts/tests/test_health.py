"""GET /healthz: 200 when the database and broker answer; 503 naming what is down; no auth.

Each failure is real: the check talks to a server that is not there (a closed loopback port, or a
database file in a folder that does not exist). Only the module-level handle the check uses is
swapped, because breaking the test's own database connection would break the test itself.
"""
import logging

import pytest
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.db.utils import load_backend

from smsportal import health
from smsportal.celery import app as celery_app

pytestmark = pytest.mark.django_db

CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1


def _break_broker(monkeypatch) -> None:
    """Point Celery at a closed port. Celery reads CELERY_BROKER_URL from the
    environment before its own setting (as in CI), so both are overridden."""
    dead = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    # Order matters: the setting first, while it still reads the real URL to restore later.
    monkeypatch.setattr(celery_app.conf, "broker_url", dead)
    monkeypatch.setenv("CELERY_BROKER_URL", dead)


def _expected_checks(settings) -> set[str]:
    return {"database", "broker"} | ({"cache"} if settings.REDIS_URL else set())


def test_it_is_healthy_without_authentication(client, settings):
    # given a running database and broker; when probed without a key
    response = client.get("/healthz")
    # then 200 with every check ok and their latency, never cached
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok" and "down" not in body
    assert set(body["checks"]) == _expected_checks(settings)
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latency_ms"] >= 0
    assert "no-cache" in response["Cache-Control"]


def test_it_names_the_broker_when_the_broker_is_down(client, monkeypatch, caplog):
    # given the broker URL pointing at a closed loopback port (broker_write_url falls back to it)
    _break_broker(monkeypatch)
    # when probed
    response = client.get("/healthz")
    # then 503 naming only the broker; the reason is logged, not shown
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["down"] == ["broker"]
    assert body["checks"]["broker"] == {"status": "down"} and body["checks"]["database"]["status"] == "ok"
    assert any(r.name == "smsportal.health" and "broker" in r.getMessage() for r in caplog.records)


@pytest.fixture
def dead_database(tmp_path):
    """A second connection to a database that is not there: PostgreSQL on a closed port, or SQLite in a missing folder."""
    settings_dict = {**connection.settings_dict}
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = str(tmp_path / "missing-folder" / "db.sqlite3")
    else:
        settings_dict.update(HOST="127.0.0.1", PORT=str(CLOSED_PORT))
    dead = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias="dead")
    yield dead
    dead.close()


def test_it_names_the_database_when_the_database_is_down(client, monkeypatch, dead_database, caplog):
    # given the health check's database handle pointing at a database that cannot be reached
    monkeypatch.setattr(health, "connection", dead_database)
    # when probed
    with caplog.at_level(logging.WARNING, logger="smsportal.health"):
        response = client.get("/healthz")
    # then 503 naming only the database
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"] and body["checks"]["database"] == {"status": "down"}
    assert body["checks"]["broker"]["status"] == "ok"
    assert "OperationalError" in caplog.text


def test_it_names_everything_that_is_down(client, monkeypatch, dead_database, settings):
    # given the database, the broker and the cache all unreachable
    monkeypatch.setattr(health, "connection", dead_database)
    _break_broker(monkeypatch)
    settings.REDIS_URL = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    monkeypatch.setattr(health, "cache", RedisCache(settings.REDIS_URL, {"OPTIONS": {"socket_connect_timeout": 1}}))
    # when probed; then 503 naming each
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["database", "broker", "cache"]


def test_it_answers_only_get(client):
    # given the probe endpoint; when posted to; then 405
    assert client.post("/healthz").status_code == 405


def test_the_api_keeps_answering_when_the_cache_is_down(world, api, settings, caplog):
    # given the cache (Redis in production) unreachable; changing CACHES resets Django's cache handlers
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{CLOSED_PORT}/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2}}}
    # when a key calls the API
    response = api.get("/v1/me", **world.a.auth)
    # then it answers (per-key limit and last-used refresh fail open), and says why in the log
    assert response.status_code == 200
    assert "cache unavailable" in caplog.text
