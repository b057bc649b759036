"""KEY-5: the client address behind trusted proxies (accounts/clientip.py), as a table, and the forwarding
headers of any other peer dropped (accounts/middleware.py); no network."""
import ipaddress

import pytest
from django.http import HttpResponse

from accounts.clientip import client_ip, parse_ip
from accounts.middleware import ClientIpMiddleware

PROXY = "127.0.0.2"  # the one trusted reverse proxy in these tests


@pytest.fixture(autouse=True)
def _trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]


# (case, REMOTE_ADDR, X-Forwarded-For, expected client address or None)
TABLE = [
    ("direct client, no header", "198.51.100.7", None, "198.51.100.7"),
    ("direct client with a spoofed header is not believed", "127.0.0.1", "198.51.100.7", "127.0.0.1"),
    ("untrusted peer with a spoofed chain is not believed", "203.0.113.9", "198.51.100.7, 127.0.0.2", "203.0.113.9"),
    ("via proxy: right-most hop wins over a forged left one", PROXY, "1.2.3.4, 198.51.100.7", "198.51.100.7"),
    ("via proxy: a forged allowed address on the left is ignored", PROXY, "198.51.100.7, 203.0.113.9", "203.0.113.9"),
    ("via proxy: our own proxy hops are skipped", PROXY, "198.51.100.7, 127.0.0.2", "198.51.100.7"),
    ("via proxy: empty header means the proxy is the client", PROXY, "", PROXY),
    ("via proxy: blank header means the proxy is the client", PROXY, "   ", PROXY),
    ("via proxy: no header means the proxy is the client", PROXY, None, PROXY),
    ("via proxy: garbage fails closed", PROXY, "not-an-ip", None),
    ("via proxy: garbage right of a good hop fails closed", PROXY, "198.51.100.7, garbage", None),
    ("via proxy: an empty hop fails closed", PROXY, "198.51.100.7, ", None),
    ("via proxy: two header lines, joined by the server with a comma", PROXY, "1.2.3.4, 198.51.100.7,203.0.113.9", "203.0.113.9"),
    ("via proxy: every hop is a proxy, so no client", PROXY, "127.0.0.2, 127.0.0.2", None),
    ("via proxy: IPv6 client", PROXY, "2001:db8::5", "2001:db8::5"),
    ("via proxy: bracketed IPv6 with a port", PROXY, "[2001:db8::5]:443", "2001:db8::5"),
    ("via proxy: IPv4 with a port", PROXY, "198.51.100.7:5555", "198.51.100.7"),
    ("via proxy: IPv4-mapped IPv6 becomes IPv4", PROXY, "::ffff:198.51.100.7", "198.51.100.7"),
    ("via proxy: a trusted proxy written as IPv4-mapped is still skipped", PROXY, "198.51.100.7, ::ffff:127.0.0.2", "198.51.100.7"),
    ("proxy peer written as IPv4-mapped is still trusted", "::ffff:127.0.0.2", "198.51.100.7", "198.51.100.7"),
    ("direct IPv6 client", "2001:db8::5", None, "2001:db8::5"),
    ("direct IPv4-mapped client becomes IPv4", "::ffff:198.51.100.7", "203.0.113.9", "198.51.100.7"),
    ("no peer address at all", None, "198.51.100.7", None),
    ("garbage peer address", "garbage", "198.51.100.7", None),
]


@pytest.mark.parametrize(("remote_addr", "forwarded_for", "expected"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_it_derives_the_client_address(remote_addr, forwarded_for, expected):
    # given a peer address and an X-Forwarded-For chain, with 127.0.0.2 as the only trusted proxy
    # when the client address is derived
    address = client_ip(remote_addr, forwarded_for)
    # then it is the expected one (or none at all, which callers deny)
    assert address == (ipaddress.ip_address(expected) if expected else None)


def test_it_believes_no_header_when_no_proxy_is_trusted(settings):
    # given no trusted proxies at all
    settings.TRUSTED_PROXIES = []
    # when the peer sends a forwarded-for chain, then the peer is the client
    assert client_ip(PROXY, "198.51.100.7") == ipaddress.ip_address(PROXY)


def test_it_follows_a_change_of_trusted_proxies(settings):
    # given the parsed proxy networks are cached per tuple of CIDRs
    assert client_ip("10.0.0.1", "198.51.100.7") == ipaddress.ip_address("10.0.0.1")
    # when the setting changes
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
    # then the new proxies are trusted, IPv4 and IPv6 alike
    assert client_ip("10.0.0.1", "198.51.100.7") == ipaddress.ip_address("198.51.100.7")
    assert client_ip("2001:db8:ffff::1", "198.51.100.8") == ipaddress.ip_address("198.51.100.8")


@pytest.mark.parametrize(("raw", "expected"), [
    ("198.51.100.7", "198.51.100.7"),
    (" 198.51.100.7 ", "198.51.100.7"),
    ("2001:DB8::5", "2001:db8::5"),
    ("[2001:db8::5]", "2001:db8::5"),
    ("[2001:db8::5]:8443", "2001:db8::5"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("198.51.100.7:80", "198.51.100.7"),
    ("", None),
    ("unknown", None),
    ("198.51.100.300", None),
    ("198.51.100.7/32", None),
    ("[2001:db8::5", None),
])
def test_it_parses_one_address(raw, expected):
    # given one address as a header would carry it; when parsed; then normalised or refused
    assert parse_ip(raw) == (ipaddress.ip_address(expected) if expected else None)


FORWARDING = {"HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "on",
              "HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_FORWARDED": "for=198.51.100.7;proto=https",
              "HTTP_X_REAL_IP": "198.51.100.7"}


@pytest.mark.parametrize(("peer", "kept"), [("127.0.0.1", False), (PROXY, True)], ids=["client", "trusted proxy"])
def test_it_drops_the_forwarding_headers_of_a_peer_that_is_not_a_trusted_proxy(rf, peer, kept):
    # given a request with every kind of forwarding header
    request = rf.get("/", REMOTE_ADDR=peer, HTTP_USER_AGENT="curl/8", **FORWARDING)
    # when the first middleware has seen it
    ClientIpMiddleware(lambda request: HttpResponse())(request)
    # then they are gone unless the peer is our proxy; other headers stay
    assert {name: request.META.get(name) for name in FORWARDING} == (FORWARDING if kept else dict.fromkeys(FORWARDING))
    assert request.META["HTTP_USER_AGENT"] == "curl/8"
    assert request.client_ip == ipaddress.ip_address("198.51.100.7" if kept else peer)


@pytest.mark.django_db
@pytest.mark.parametrize(("peer", "status"), [("127.0.0.1", 301), (PROXY, 401)], ids=["client", "trusted proxy"])
def test_only_a_trusted_proxy_says_the_request_came_over_https(client, settings, peer, status):
    # given the HTTPS redirect, and the scheme header of the trusted proxy (as settings.py sets it)
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # when a peer says the request came over HTTPS
    response = client.get("/v1/me", REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO="https")
    # then only the trusted proxy is believed (its request goes on, to a 401 for want of a key)
    assert response.status_code == status
