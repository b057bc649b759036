"""smsportal/outbound.py: real loopback HTTP (no mocked HTTP), redirects, timeouts, the read cap, and the SSRF guard
(RELIABILITY SSRF-1..4) with a scripted resolver and a connect spy, so nothing leaves loopback."""
from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from smsportal import outbound
from smsportal.tests.http_receiver import FakeNetwork, Receiver, self_signed_certificate

PUBLIC_V4 = "93.184.216.34"  # globally routable; the spy routes it to a loopback receiver
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

# RELIABILITY SSRF-1: literal URLs that must never be connected to with private targets disallowed.
BLOCKED_URLS = [
    "http://127.0.0.1/", "http://127.0.0.1:8000/hook", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/",
    "http://0x7f000001/", "http://127.1/", "http://127.000.000.001/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
    "http://169.254.169.254/latest/meta-data/", "http://169.254.169.254:80/", "http://0.0.0.0:6379/", "http://0/",
    "http://localhost/", "http://localhost./", "http://LOCALHOST:8080/", "http://api.localhost/",
    "https://good.example@127.0.0.1/", "https://user:pass@good.example/", "https://127.0.0.1#@good.example/",
    "http://127.0.0.1\\@good.example/", "http://good.example\\@127.0.0.1/", "http://127.0.0.1\t/",
    "http://127.0.\t0.1/", "http://good.example/\n", " http://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_",
    "ftp://good.example/", "dict://127.0.0.1:11211/", "javascript:alert(1)", "http://[fe80::1%25eth0]/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[ff02::1]/", "http://[::]/",
    "http://[64:ff9b::a00:5]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[2002:a00:5::1]/",
    "http://10.0.0.5/", "http://10.255.255.255:5432/", "http://172.16.0.1/", "http://172.31.255.255/",
    "http://192.168.1.1/", "http://100.64.0.1/", "http://192.0.0.1/", "http://192.0.2.1/", "http://198.18.0.1/",
    "http://198.51.100.7/", "http://203.0.113.9/", "http://224.0.0.1/", "http://239.255.255.250:1900/",
    "http://240.0.0.1/", "http://255.255.255.255/", "http://[2001:db8::1]/", "http://1.2.3.4.5/",
    "http://ex%41mple.com/", "http://xn--80ak6aa92e.com:22/", "http://localhøst/", "http://ｌｏｃａｌｈｏｓｔ/",
    "http://１２７.０.０.１/", f"http://{PUBLIC_V4}:22/", f"http://{PUBLIC_V4}:6379/", f"http://{PUBLIC_V4}:11211/",
    f"http://{PUBLIC_V4}:5432/", "http:///path", "http://:80/", "http://good.example:99999/", "http://good.example:0/",
]


@pytest.fixture
def net(monkeypatch) -> FakeNetwork:
    return FakeNetwork(monkeypatch)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _post(url: str, *, allow_private: bool = True, timeout: float = 5.0, **kwargs) -> outbound.Response:
    return outbound.post(url, body=b'{"a":1}', headers={"content-type": "application/json"}, timeout=timeout,
                         allow_private=allow_private, **kwargs)


# --- plain HTTP --------------------------------------------------------------------------------------------


def test_it_posts_and_returns_status_latency_and_the_body(receiver):
    # given a receiver answering 201
    receiver.answer(201, body=b"thanks")
    # when we post to it
    response = _post(receiver.url("/hook?x=1"))
    # then the answer is there, and the receiver got our body, path, Host and headers
    assert (response.status_code, response.body) == (201, b"thanks")
    assert 0 <= response.latency_ms < 5000
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?x=1", b'{"a":1}')
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"


def test_it_never_follows_a_redirect(receiver):
    # given a receiver that redirects to another (internal) receiver
    with Receiver() as internal:
        receiver.answer(302, headers={"Location": internal.url("/secret")})
        # when we post
        response = _post(receiver.url())
    # then the 302 comes back as it is and the Location was never requested
    assert response.status_code == 302 and response.headers["location"] == internal.url("/secret")
    assert internal.requests == []


def test_a_slow_answer_is_cut_off_at_the_timeout(receiver):
    # given a receiver that waits 3 s before answering
    receiver.answer(200, delay=3.0)
    started = time.monotonic()
    # when we post with a 0.5 s budget; then it times out within the budget (plus scheduling slack)
    with pytest.raises(outbound.Timeout) as caught:
        _post(receiver.url(), timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert caught.value.error_class == "timeout" and 400 <= caught.value.latency_ms < 1500


def test_a_receiver_dripping_its_body_cannot_outlast_the_timeout(receiver):
    # given a receiver that sends its headers at once, then one body byte every 0.1 s (each read is quick)
    receiver.answer(200, body=b"x" * 100, drip=0.1)
    started = time.monotonic()
    # when we post with a 0.6 s budget; then the whole exchange is aborted at the deadline
    with pytest.raises(outbound.Timeout):
        _post(receiver.url(), timeout=0.6)
    assert time.monotonic() - started < 1.5


def test_it_reads_at_most_64_kib_of_an_answer(receiver):
    # given a 1 MiB answer; when we post; then only the first 64 KiB are read
    receiver.answer(200, body=b"y" * (1024 * 1024))
    response = _post(receiver.url())
    assert len(response.body) == outbound.MAX_RESPONSE_BYTES == 64 * 1024


def test_a_closed_port_is_a_connection_error():
    # given a port nobody listens on (a receiver that has stopped)
    closed = Receiver()
    url = closed.url()
    closed.stop()
    # when we post; then connection_error
    with pytest.raises(outbound.ConnectionFailed) as caught:
        _post(url)
    assert caught.value.error_class == "connection_error"


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    response = outbound.Response(429, {"retry-after": "120"}, b"")
    dated = outbound.Response(429, {"retry-after": format_datetime(now + timedelta(seconds=90), usegmt=True)}, b"")
    assert response.retry_after(now=now) == 120
    assert dated.retry_after(now=now) == 90
    assert outbound.Response(429, {"retry-after": "soon"}, b"").retry_after() is None
    assert outbound.Response(429, {}, b"").retry_after() is None


# --- the SSRF guard: literals -----------------------------------------------------------------------------


def test_the_bypass_table_is_large_enough():
    assert len(BLOCKED_URLS) >= 40


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_a_private_or_malformed_target_is_refused_without_a_connect(net, url):
    # given private targets are not allowed; when we post to a bypass URL
    with pytest.raises(outbound.BlockedDestination) as caught:
        _post(url, allow_private=False)
    # then it is refused as blocked_destination and no connection was even attempted
    assert caught.value.error_class == "blocked_destination"
    assert net.connects == []


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.0.1", "169.254.169.254", "100.64.1.1", "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "224.0.0.251", "240.1.1.1", "255.255.255.255", "192.0.0.8", "198.19.255.255", "::1", "::", "fe80::1", "fc00::1", "ff05::2",
    "::ffff:127.0.0.1", "::ffff:10.0.0.5", "64:ff9b::a00:5", "64:ff9b:1::1", "2002:a00:5::", "2001:db8::5",
    "::7f00:1", "fec0::1", "100::1", "fe80::1%eth0",
])
def test_non_public_addresses_are_not_public(address):
    assert outbound.address_is_public(address) is False


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_are_public(address):
    assert outbound.address_is_public(address) is True


@pytest.mark.parametrize(("port", "allowed"), [(80, True), (443, True), (8080, True), (8443, True), (22, False),
                                               (25, False), (5432, False), (6379, False), (11211, False)])
def test_ports_other_than_web_and_unprivileged_ones_are_refused(port, allowed):
    assert outbound.port_allowed(port) is allowed


# --- the SSRF guard: DNS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    ["10.0.0.5"], ["127.0.0.1"], ["::ffff:10.0.0.5"], ["169.254.169.254"], ["64:ff9b::a00:5"], ["::1"],
    [PUBLIC_V4, "10.0.0.5"], [PUBLIC_V6, "fd00::5"], [PUBLIC_V4, "::ffff:127.0.0.1"],
])
def test_a_name_with_any_non_public_answer_is_refused_without_a_connect(net, receiver, answer):
    # given evil.test resolves to (among others) a private address, and the public one would answer
    net.resolve("evil.test", answer).route(PUBLIC_V4, receiver)
    # when we post to it; then refused (a mixed answer is refused, not filtered), one lookup, no connect
    with pytest.raises(outbound.BlockedDestination):
        _post("http://evil.test/hook", allow_private=False)
    assert net.resolutions == ["evil.test"] and net.connects == [] and receiver.requests == []


def test_dns_rebinding_cannot_move_the_connection(net, receiver):
    # given a name that answers a public address once, then 127.0.0.1 (a rebinding attacker)
    net.resolve("rebind.test", [PUBLIC_V4], ["127.0.0.1"]).route(PUBLIC_V4, receiver)
    # when we post to it twice
    first = _post("http://rebind.test:8080/hook", allow_private=False)
    # then the first attempt resolved once and connected to the validated public address
    assert first.status_code == 200
    assert net.resolutions == ["rebind.test"] and net.connects == [(PUBLIC_V4, 8080)]
    assert receiver.requests[0].headers["host"] == "rebind.test:8080"
    # and the second attempt resolves again (once) and is refused for its new answer, with no connect
    with pytest.raises(outbound.BlockedDestination):
        _post("http://rebind.test:8080/hook", allow_private=False)
    assert net.resolutions == ["rebind.test", "rebind.test"] and net.connects == [(PUBLIC_V4, 8080)]


def test_tls_uses_the_host_name_for_sni_and_the_certificate_while_connecting_to_the_validated_address(net, tmp_path):
    # given hooks.example.com resolves to a public address routed to a TLS receiver with a certificate for that name
    certfile, keyfile = self_signed_certificate(tmp_path, "hooks.example.com")
    trust = ssl.create_default_context(cafile=certfile)
    with Receiver(tls=(certfile, keyfile)) as tls_receiver:
        net.resolve("hooks.example.com", [PUBLIC_V4]).route(PUBLIC_V4, tls_receiver)
        # when we post over https
        response = _post("https://hooks.example.com/hook", allow_private=False, ssl_context=trust)
        # then the handshake named the host (SNI), the certificate was verified for it, and Host says it too
        assert response.status_code == 200
        assert tls_receiver.sni_names == ["hooks.example.com"]
        assert tls_receiver.requests[0].headers["host"] == "hooks.example.com"
        assert net.connects == [(PUBLIC_V4, 443)] and net.resolutions == ["hooks.example.com"]
        # and a name the certificate does not cover fails the check (tls_error), even on the same address
        net.resolve("other.example.com", [PUBLIC_V4])
        with pytest.raises(outbound.TlsError):
            _post("https://other.example.com/hook", allow_private=False, ssl_context=trust)


def test_an_unknown_name_is_a_dns_error(net):
    with pytest.raises(outbound.DnsError) as caught:
        _post("http://does-not-exist.test/", allow_private=False)
    assert caught.value.error_class == "dns_error" and net.connects == []


def test_with_private_targets_allowed_loopback_works_but_the_url_rules_still_hold(net, receiver):
    # given private targets allowed (make run, tests); then loopback answers
    assert _post(receiver.url(), allow_private=True).status_code == 200
    # but schemes, credentials and malformed URLs are still refused, without a connect
    connects = len(net.connects)
    for url in ("ftp://127.0.0.1/", f"http://u:p@127.0.0.1:{receiver.port}/", "http://127.0.0.1\\@x/"):
        with pytest.raises(outbound.BlockedDestination):
            _post(url, allow_private=True)
    assert len(net.connects) == connects
