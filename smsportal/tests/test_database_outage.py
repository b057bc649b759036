"""The database unreachable: the web server as shipped (Procfile.dev: gunicorn sync workers on smsportal.wsgi)
reaches PostgreSQL through a fault proxy the test cuts. The API answers 503 `service_unavailable`
with Retry-After in its error shape, the portal a plain 503 page, and both work again once the
database is back."""
from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from accounts.tests.factories import TenantFactory, make_api_key
from smsportal.tests.faultproxy import FaultProxy
from smsportal.tests.servers import child_database_url, http, procfile_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the server process cannot see pytest-django's in-memory SQLite database"),
]

# Any session id: reading it is a query on the sessions table, made by the portal's access check.
PORTAL_COOKIE = {"Cookie": "sessionid=" + "x" * 32}


def _api_error(answer) -> tuple[int, str | None, dict]:
    status, headers, body = answer
    return status, headers.get("retry-after"), json.loads(body)["error"] if status >= 400 else {}


def test_the_database_down_is_a_503_with_retry_after_and_service_resumes_when_it_is_back(tmp_path):
    # given the web server, whose database connections go through a fault proxy, and a tenant's key
    tenant = TenantFactory()
    _, secret = make_api_key(tenant, name="outage")
    auth = {"Authorization": f"Bearer {secret}"}
    db = connection.settings_dict
    with FaultProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))) as proxy, procfile_server(
            log=tmp_path / "web.log", env={"DATABASE_URL": child_database_url(port=proxy.port),
                                           "DB_POOL_TIMEOUT": "2"}) as web:
        me, portal = web.url("/v1/me"), web.url("/portal/")
        # when the database answers; then the API and the portal work
        assert http("GET", me, headers=auth)[0] == 200
        assert http("GET", portal, headers=PORTAL_COOKIE)[0] == 302  # to the sign-in page
        # when the connection to the database is cut
        proxy.cut()
        # then the API answers 503 service_unavailable with Retry-After, in its error shape, for a read
        # and for a send (authentication is the first query of both)
        for answer in (http("GET", me, headers=auth),
                       http("POST", web.url("/v1/messages"), headers=auth,
                            body={"to": "+14155550123", "from": "Acme", "text": "hello"})):
            status, retry_after, error = _api_error(answer)
            assert (status, retry_after, error["code"]) == (503, "5", "service_unavailable"), answer
            assert error["message"] and answer[1]["content-type"] == "application/json"
        # and the portal shows a plain 503 page with Retry-After, no trace
        status, headers, body = http("GET", portal, headers=PORTAL_COOKIE)
        page = body.decode()
        assert (status, headers.get("retry-after")) == (503, "5")
        assert headers["content-type"].startswith("text/html") and "temporarily unavailable" in page
        assert "Traceback" not in page and "OperationalError" not in page
        # when the database is back; then both work again within seconds
        proxy.restore()
        deadline = time.monotonic() + 30
        while http("GET", me, headers=auth)[0] != 200:
            assert time.monotonic() < deadline, web.tail()
            time.sleep(0.5)
        assert http("GET", portal, headers=PORTAL_COOKIE)[0] == 302
        log = web.log.read_text(errors="replace")
    # and the API's 503s were logged as the database being unavailable, as warnings
    assert "WARNING smsportal.api database unavailable on MeView: OperationalError" in log
