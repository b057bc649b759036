"""/v1 on the API's own middleware chain (smsportal/handlers.py), everything else on MIDDLEWARE.

In-process through the shipped WSGI application object (any database), and through the shipped web
commands: Procfile.dev's web (smsportal.wsgi) and longpoll (smsportal.asgi), which need PostgreSQL.
"""
from __future__ import annotations

import io
import json
import sys
from numbers.tests.factories import shared_senders

import pytest
from django.conf import settings

from accounts.tests.factories import TenantFactory, make_api_key
from smsportal.handlers import ApiRouter, ApiWSGIHandler, is_api_path
from smsportal.tests.servers import (
    free_port,
    http,
    on_loopback,
    procfile_longpoll,
    procfile_web,
    server_env,
    web_server,
)

TO = "+14155550123"


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def test_the_api_chain_is_the_shipped_chain_less_the_browser_layers():
    # API_MIDDLEWARE keeps MIDDLEWARE's order: a subsequence of it, with the client address first
    shipped = list(settings.MIDDLEWARE)
    positions = [shipped.index(name) for name in settings.API_MIDDLEWARE]
    assert positions == sorted(positions)
    assert settings.API_MIDDLEWARE[0] == "accounts.middleware.ClientIpMiddleware"
    # and what it leaves out is what only a browser's request needs
    left_out = {name.rsplit(".", 1)[1] for name in shipped} - {name.rsplit(".", 1)[1] for name in settings.API_MIDDLEWARE}
    assert left_out == {"StaticFilesMiddleware", "SessionMiddleware", "CsrfViewMiddleware", "AuthenticationMiddleware",
                        "OTPMiddleware", "PortalMessageMiddleware", "XFrameOptionsMiddleware", "PortalAccessMiddleware"}


def test_building_the_api_handler_leaves_the_middleware_setting_as_it_was():
    before = list(settings.MIDDLEWARE)
    handler = ApiWSGIHandler()
    assert list(settings.MIDDLEWARE) == before
    assert handler._middleware_chain is not None


@pytest.mark.parametrize("path, api", [("/v1/messages", True), ("/v1/", True), ("/v1", False), ("/v10/x", False),
                                       ("/portal/login", False), ("/", False)])
def test_which_paths_are_the_apis(path, api):
    assert is_api_path(path) is api


def test_the_router_sends_each_path_to_its_handler():
    seen = []
    router = ApiRouter(api=lambda environ, start: seen.append(("api", environ.get("PATH_INFO"))),
                       site=lambda environ, start: seen.append(("site", environ.get("PATH_INFO"))))
    for environ in ({"PATH_INFO": "/v1/messages"}, {"PATH_INFO": "/portal/"}, {"PATH_INFO": "/v1"}, {}):
        router(environ, None)
    assert seen == [("api", "/v1/messages"), ("site", "/portal/"), ("site", "/v1"), ("site", None)]


def _call(path: str, *, host: str = "127.0.0.1", method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    from smsportal.wsgi import application

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "HTTP_HOST": host, "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1"}
    answer = {}

    def start_response(status, headers, *_):
        answer["status"], answer["headers"] = status, {name.lower(): value for name, value in headers}

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.django_db
def test_the_shipped_application_serves_v1_without_the_browser_layers():
    # an API request is answered as before: JSON error, security headers, a length, the docs' CSP
    status, headers, body = _call("/v1/me")
    assert status.startswith("401") and json.loads(body)["error"]["code"] == "authentication_required"
    assert headers["x-content-type-options"] == "nosniff" and headers["content-length"] == str(len(body))
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # but no layer of the portal's ran: no framing header (the CSP forbids framing), no cookie, no Vary: Cookie
    assert "x-frame-options" not in headers and "set-cookie" not in headers
    assert "cookie" not in headers.get("vary", "").lower()


@pytest.mark.django_db
def test_the_shipped_application_still_checks_the_host_under_v1():
    status, _, body = _call("/v1/me", host="evil.example")
    assert status.startswith("400") and json.loads(body)["error"]["code"] == "invalid_request"


@pytest.mark.django_db
def test_the_portal_keeps_the_whole_chain():
    status, headers, _ = _call("/portal/login/")
    assert status.startswith("200")
    assert headers["x-frame-options"] == "DENY" and "csrftoken=" in headers["set-cookie"]


# --- through the shipped servers -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def served(request, django_db_setup):
    port = free_port()
    shipped = procfile_longpoll() if request.param == "asgi" else procfile_web()
    with web_server(on_loopback(shipped, port, max_workers=1), env=server_env(DB_POOL_MAX_SIZE="8"), port=port):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.django_db(transaction=True)
def test_a_served_send_goes_through_the_api_chain_and_the_portal_through_the_whole(served):
    secret = make_api_key(TenantFactory(), scopes=["messages:send"])[1]
    status, headers, body = http("POST", f"{served}/v1/messages", body={"to": TO, "from": "Acme", "text": "hello"},
                                 headers={"Authorization": f"Bearer {secret}"})
    assert status == 202, body
    assert json.loads(body)["status"] == "queued" and headers["x-content-type-options"] == "nosniff"
    assert "x-frame-options" not in headers and "set-cookie" not in headers
    status, headers, _ = http("GET", f"{served}/portal/login/")
    assert status == 200 and headers["x-frame-options"] == "DENY" and "csrftoken=" in headers["set-cookie"]
