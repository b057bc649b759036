"""Forwarded headers through the real web servers, run as shipped: only a trusted proxy is believed.

Each web command we ship is read from where it is written (the web and longpoll lines of Procfile.dev, the
README's production ASGI and WSGI commands), pointed at a free loopback port (and, for the README's
4-worker examples, 2 workers) and started as a subprocess on the test database, with DEBUG off. Each
runs under three settings:

- no trusted proxy, HTTPS redirect on: X-Forwarded-Proto / -Ssl / -Protocol, Forwarded and
  X-Forwarded-Host from a client on the same host do not skip the redirect nor choose its host;
- no trusted proxy, redirect off (so the request reaches the views): a forged X-Forwarded-For does
  not pass an allowlist of 198.51.100.0/24, the audit log and the sign-in lockout see 127.0.0.1, and
  a SCRIPT_NAME header does not move the application;
- TRUSTED_PROXIES=127.0.0.1/32, redirect on: the proxy's X-Forwarded-For and X-Forwarded-Proto are
  believed, while another address on the host (127.0.0.2) is not, and a client behind the proxy
  cannot slip its own hop in as X_Forwarded_For.

PostgreSQL only: the server processes must see the data this process writes.
"""
from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from accounts import services
from accounts.models import AuditEvent, LoginFailure
from accounts.portal.views.auth import LOCKED
from accounts.tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory, make_api_key
from smsportal.tests.servers import (
    Server,
    free_port,
    on_loopback,
    procfile_longpoll,
    procfile_web,
    readme_production,
    server_env,
    web_server,
)

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED = "198.51.100.0/24"
FORGED = "198.51.100.7"  # inside ALLOWED: what a client would claim to pass it
LOGIN_FAILURE_LIMIT = 3


# --- the shipped commands ------------------------------------------------------------------------


COMMANDS = {
    "procfile-web": procfile_web,
    "procfile-longpoll": procfile_longpoll,
    "readme-asgi": lambda: readme_production("smsportal.asgi"),
    "readme-wsgi": lambda: readme_production("smsportal.wsgi"),
}


def _option_set(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


@pytest.fixture(scope="module", params=list(COMMANDS))
def command(request) -> list[str]:
    return COMMANDS[request.param]()


@contextmanager
def _serve(command: list[str], *, trusted_proxies: str, ssl_redirect: bool) -> Iterator[Server]:
    env = server_env(DEBUG="false", TRUSTED_PROXIES=trusted_proxies, SECURE_SSL_REDIRECT=str(ssl_redirect).lower(),
                     ALLOWED_HOSTS="127.0.0.1", LOGIN_FAILURE_LIMIT=str(LOGIN_FAILURE_LIMIT),
                     DB_POOL_MAX_SIZE="4", WEB_THREADS="4")
    for name in ("FORWARDED_ALLOW_IPS", "GUNICORN_CMD_ARGS"):  # the commands must be safe without them
        env.pop(name, None)
    port = free_port()
    with web_server(on_loopback(command, port), env=env, port=port) as server:
        yield server


@pytest.fixture(scope="module")
def redirecting(command, django_db_setup) -> Iterator[Server]:
    with _serve(command, trusted_proxies="", ssl_redirect=True) as server:
        yield server


@pytest.fixture(scope="module")
def plain(command, django_db_setup) -> Iterator[Server]:
    with _serve(command, trusted_proxies="", ssl_redirect=False) as server:
        yield server


@pytest.fixture(scope="module")
def proxied(command, django_db_setup) -> Iterator[Server]:
    with _serve(command, trusted_proxies="127.0.0.1/32", ssl_redirect=True) as server:
        yield server


# --- a client that can pick its own address and send any header ---------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def _request(server: Server, method: str, path: str, headers: list[tuple[str, str]], *, body: bytes = b"",
             source: str = "127.0.0.1") -> Answer:
    """One request from `source` (any 127.x address is this host), headers sent as given, in order."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    try:
        connection.putrequest(method, path)
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def _error_code(answer: Answer) -> str:
    return json.loads(answer.body)["error"]["code"]


@pytest.fixture
def key_secret() -> str:
    """An API key of a tenant whose allowlist admits only 198.51.100.0/24."""
    tenant = TenantFactory()
    _, secret = make_api_key(tenant)
    services.ip_allowlist_add(tenant=tenant, cidr=ALLOWED, actor=services.SYSTEM)
    return secret


# --- no trusted proxy ----------------------------------------------------------------------------


@pytest.mark.parametrize("forged", [
    [("X-Forwarded-Proto", "https")],
    [("X-Forwarded-Ssl", "on")],
    [("X-Forwarded-Protocol", "ssl")],
    [("Forwarded", "for=198.51.100.7;proto=https;host=evil.example")],
    [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "443")],
], ids=["proto", "ssl", "protocol", "forwarded", "proto-host-port"])
def test_it_redirects_to_https_whatever_a_local_client_says_of_its_scheme(redirecting, key_secret, forged):
    # given a server with no trusted proxy and the HTTPS redirect on
    # when a client on the same host claims, in a forwarding header, to have come over HTTPS
    answer = _request(redirecting, "GET", "/v1/me", [("Authorization", f"Bearer {key_secret}"), *forged])
    # then it is still sent to HTTPS, on the host it asked for
    assert answer.status == 301, answer.body
    assert answer.headers["Location"] == f"https://127.0.0.1:{redirecting.port}/v1/me"


@pytest.mark.parametrize("forged", [
    [("X-Forwarded-For", FORGED)],
    [("X-Forwarded-For", f"{FORGED}, 127.0.0.1")],
    [("X-Real-IP", FORGED)],
    [("Forwarded", f"for={FORGED}")],
], ids=["x-forwarded-for", "x-forwarded-for-chain", "x-real-ip", "forwarded"])
def test_a_forged_address_does_not_pass_the_allowlist(plain, key_secret, forged):
    # given a tenant whose allowlist admits only 198.51.100.0/24, and no trusted proxy
    # when a client on 127.0.0.1 claims to be 198.51.100.7
    answer = _request(plain, "GET", "/v1/me", [("Authorization", f"Bearer {key_secret}"), *forged])
    # then it is refused as 127.0.0.1
    assert answer.status == 403, answer.body
    assert _error_code(answer) == "ip_not_allowed"


@pytest.mark.parametrize("script_name", ["/v1", "/elsewhere"])
def test_a_local_client_cannot_move_the_application_with_a_script_name_header(plain, key_secret, script_name):
    # given no trusted proxy (gunicorn believes SCRIPT_NAME and PATH_INFO headers from its forwarders,
    # 127.0.0.1 by default: /v1 re-routed the request to a 404, /elsewhere gave gunicorn's own 500)
    # when a client on the same host sends one
    answer = _request(plain, "GET", "/v1/me", [("Authorization", f"Bearer {key_secret}"), ("SCRIPT_NAME", script_name)])
    # then the request is served as if it had not: refused by the allowlist, in our error shape
    assert answer.status == 403, answer.body
    assert _error_code(answer) == "ip_not_allowed"


def _sign_in(server: Server, *, email: str, password: str, forged_ip: str) -> Answer:
    page = _request(server, "GET", "/portal/login/", [("X-Forwarded-For", forged_ip)])
    csrf_cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"]).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1).decode()
    form = urlencode({"email": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    return _request(server, "POST", "/portal/login/", [
        ("X-Forwarded-For", forged_ip), ("Cookie", f"csrftoken={csrf_cookie}"),
        ("Content-Type", "application/x-www-form-urlencoded")], body=form)


def test_the_audit_log_and_the_sign_in_lockout_see_the_real_address(plain):
    # given a member of a tenant, and no trusted proxy
    user = UserFactory()
    MembershipFactory(user=user)
    # when a client on 127.0.0.1 fails to sign in as often as the lockout allows, each time claiming
    # another address
    for attempt in range(LOGIN_FAILURE_LIMIT):
        failed = _sign_in(plain, email=user.email, password="wrong", forged_ip=f"198.51.100.{attempt + 1}")
        assert failed.status == 200 and LOCKED.encode() not in failed.body
    # then every failure is recorded, and audited, from 127.0.0.1 ...
    assert list(LoginFailure.objects.values_list("ip_address", flat=True)) == ["127.0.0.1"] * LOGIN_FAILURE_LIMIT
    audited = AuditEvent.unscoped.filter(action="auth.login_failed").values_list("ip_address", flat=True)
    assert list(audited) == ["127.0.0.1"] * LOGIN_FAILURE_LIMIT
    # ... and the email is locked for it: a yet other claimed address, even with the right password, is refused
    locked = _sign_in(plain, email=user.email, password=PASSWORD, forged_ip="198.51.100.99")
    assert locked.status == 200 and LOCKED.encode() in locked.body
    assert not AuditEvent.unscoped.filter(action="auth.login").exists()


# --- behind a trusted proxy ----------------------------------------------------------------------


def test_a_trusted_proxy_is_believed(proxied, key_secret):
    # given a server whose trusted proxy is 127.0.0.1, and the HTTPS redirect on
    # when the proxy forwards a request it took over HTTPS from 198.51.100.7
    answer = _request(proxied, "GET", "/v1/me", [("Authorization", f"Bearer {key_secret}"),
                                                  ("X-Forwarded-For", FORGED), ("X-Forwarded-Proto", "https")])
    # then neither the redirect nor the allowlist stops it
    assert answer.status == 200, answer.body


def test_another_address_on_the_host_is_not_the_trusted_proxy(proxied, key_secret):
    # given a server whose trusted proxy is 127.0.0.1
    # when a client on 127.0.0.2 sends the proxy's headers
    answer = _request(proxied, "GET", "/v1/me", [("Authorization", f"Bearer {key_secret}"),
                                                  ("X-Forwarded-For", FORGED), ("X-Forwarded-Proto", "https")],
                      source="127.0.0.2")
    # then they are not believed: it is sent to HTTPS
    assert answer.status == 301, answer.body


def test_a_client_behind_the_proxy_cannot_add_its_own_hop_with_an_underscore(proxied, key_secret):
    # given a server whose trusted proxy is 127.0.0.1
    # when the proxy forwards a client at 203.0.113.9 that also sent X_Forwarded_For: 198.51.100.7
    answer = _request(proxied, "GET", "/v1/me", [
        ("Authorization", f"Bearer {key_secret}"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "203.0.113.9"), ("X_Forwarded_For", FORGED)])
    # then the client is 203.0.113.9, outside the allowlist
    assert answer.status == 403, answer.body
    assert _error_code(answer) == "ip_not_allowed"
