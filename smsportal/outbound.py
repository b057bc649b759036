"""The one module for outbound HTTP: timeouts, no redirects, a capped response read and the SSRF guard.

Nothing else in the project opens an HTTP connection to a URL a customer (or anyone) supplied.

Built on the standard library's `http.client`, deliberately (no third-party client to pin and keep
compatible): the host is resolved ONCE with `socket.getaddrinfo`; unless private targets are
allowed, the request is refused when ANY answer is not a public address (IPv4-mapped, NAT64 and
6to4 IPv6 are judged by the IPv4 address they carry); then we open the socket to a validated
address ourselves, while http.client sends the original `Host` header and `ssl` uses the original
name for SNI and certificate verification. Nothing resolves the name a second time, so a DNS answer
that changes between check and connect (rebinding) cannot redirect the connection. http.client never
follows redirects: a 3xx is returned to the caller as it is.

Timeouts: `timeout` bounds the whole exchange (connect, send, response head and the capped body read),
enforced by per-operation socket timeouts and a watchdog that shuts the socket down at the deadline,
so a receiver dripping one byte a second cannot hold a worker. At most MAX_RESPONSE_BYTES of the body
are read; the rest is never read.
"""
from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 64 * 1024
MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not public, whatever the running Python's `is_global` says (its tables changed between patch releases).
_DENIED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/8", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Well-known ports of internal services: refused even on a public address (unless private targets are allowed).
INTERNAL_SERVICE_PORTS = frozenset({2375, 2376, 2379, 2380, 3306, 5432, 5672, 5984, 6379, 6443, 7001, 8500, 9042,
                                    9200, 9300, 10250, 11211, 15672, 27017})

_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace (tabs too), control characters, backslash
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
# A last label like these makes the host an IPv4 address in WHATWG and inet_aton parsing (127.1, 0x7f.1, 2130706433).
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


# --- errors ----------------------------------------------------------------------------------------


class OutboundError(Exception):
    """A request that produced no HTTP response. `error_class` is a short stable name for logs and APIs."""

    error_class = "connection_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.latency_ms: int | None = None


class BlockedDestination(OutboundError):
    """Refused before any connection: the URL, its port or an address it resolves to is not allowed."""

    error_class = "blocked_destination"


class DnsError(OutboundError):
    error_class = "dns_error"


class Timeout(OutboundError):
    error_class = "timeout"


class ConnectionFailed(OutboundError):
    error_class = "connection_error"


class TlsError(OutboundError):
    error_class = "tls_error"


class ProtocolError(OutboundError):
    error_class = "protocol_error"


# --- URLs and addresses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A parsed, syntactically acceptable http(s) URL."""

    scheme: str
    host: str  # lower-case name without a trailing dot, or the canonical text of an IP literal
    port: int
    request_target: str  # path and query
    ip: IPAddress | None = None  # set when the host is an IP literal (in any notation inet_aton accepts)

    @property
    def is_default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)


def parse_url(url: str) -> Target:
    """Parse with one parser (urllib's urlsplit) and refuse whatever parsers disagree about.

    Raises BlockedDestination: not http(s); credentials; a fragment; whitespace, control characters or a backslash
    anywhere (urlsplit silently drops tabs and newlines, browsers turn backslashes into slashes);
    non-ASCII (send the punycode form); an IPv6 zone id; a malformed host or port.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise BlockedDestination(f"The URL must be 1 to {MAX_URL_LENGTH} characters.")
    if _UNSAFE_CHARACTERS.search(url):
        raise BlockedDestination("The URL contains whitespace, a control character or a backslash.")
    if not url.isascii():
        raise BlockedDestination("The URL must be ASCII: percent-encode the path and use the punycode (xn--) host name.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedDestination("Only http and https URLs are allowed.")
    if "#" in url:
        raise BlockedDestination("The URL must not have a #fragment (it is never sent, and hides what the host is).")
    if "@" in parts.netloc:
        raise BlockedDestination("The URL must not contain a user name or password.")
    try:
        port = parts.port
    except ValueError:
        raise BlockedDestination("The URL's port is not a number between 0 and 65535.") from None
    host, ip = _parse_host(parts.netloc, parts.hostname or "")
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise BlockedDestination("The URL's port is not between 1 and 65535.")
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, request_target=request_target, ip=ip)


def _parse_host(netloc: str, hostname: str) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise BlockedDestination("The URL has no host.")
    if "%" in hostname:
        raise BlockedDestination("The URL's host must not contain % (percent-encoding or an IPv6 zone).")
    if netloc.startswith("["):
        try:
            ip = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise BlockedDestination("The URL's host is not a valid IPv6 address.") from None
        return str(ip), ip
    name = hostname[:-1] if hostname.endswith(".") else hostname
    try:
        ip = ipaddress.IPv4Address(name)
    except ValueError:
        ip = None
    if ip is None and _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        # Legacy IPv4 spellings (2130706433, 0177.0.0.1, 0x7f.1, 127.1): what the resolver would make of them.
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            raise BlockedDestination("The URL's host is not a valid host name or IPv4 address.") from None
    if ip is not None:
        return str(ip), ip
    if not _HOST_NAME.match(name):
        raise BlockedDestination("The URL's host is not a valid host name.")
    return name, None


def address_is_public(address: IPAddress | str) -> bool:
    """True for a globally routable unicast address. IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96)
    and 6to4 (2002::/16) addresses are judged by the IPv4 address they embed."""
    if isinstance(address, str):
        text, _, zone = address.partition("%")
        if zone:
            return False  # a scoped (link-local) address
        address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_is_public(embedded)
    if any(address in network for network in _DENIED_NETWORKS if network.version == address.version):
        return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )


def host_is_local_name(host: str) -> bool:
    """`localhost` and `*.localhost` always mean this machine (RFC 6761), whatever DNS says."""
    return host == "localhost" or host.endswith(".localhost")


def port_allowed(port: int) -> bool:
    """80, 443 and unprivileged ports other than well-known internal services (databases, caches, brokers)."""
    return port in (80, 443) or (1024 <= port <= 65535 and port not in INTERNAL_SERVICE_PORTS)


def check_target(target: Target, *, allow_private: bool) -> None:
    """The checks that need no DNS: local names, IP literals, ports. Raises BlockedDestination."""
    if allow_private:
        return
    if host_is_local_name(target.host):
        raise BlockedDestination("The URL's host is this machine (localhost).")
    if target.ip is not None and not address_is_public(target.ip):
        raise BlockedDestination("The URL's host is not a public IP address.")
    if not port_allowed(target.port):
        raise BlockedDestination(f"Port {target.port} is not allowed; use 443, 80 or a port from 1024 up.")


@dataclass(frozen=True)
class Address:
    family: int
    sockaddr: tuple

    @property
    def ip(self) -> str:
        return self.sockaddr[0]


def resolve(target: Target, *, allow_private: bool) -> list[Address]:
    """The addresses to connect to: ONE getaddrinfo call for a name (none for an IP literal).

    Unless `allow_private`, raises BlockedDestination when ANY answer is not public: a mixed answer
    (one public A record, one private AAAA) is refused, not filtered.
    """
    check_target(target, allow_private=allow_private)
    if target.ip is not None:
        if target.ip.version == 4:
            return [Address(socket.AF_INET, (str(target.ip), target.port))]
        return [Address(socket.AF_INET6, (str(target.ip), target.port, 0, 0))]
    try:
        answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise DnsError(f"The host name {target.host} could not be resolved.") from exc
    addresses: list[Address] = []
    for family, _type, _proto, _canonname, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not allow_private and not address_is_public(sockaddr[0]):
            raise BlockedDestination(f"The host name {target.host} resolves to an address that is not public.")
        address = Address(family, tuple(sockaddr))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DnsError(f"The host name {target.host} has no IPv4 or IPv6 address.")
    return addresses


# --- requests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: dict[str, str] = field(repr=False)  # names in lower case
    body: bytes = field(repr=False)  # at most MAX_RESPONSE_BYTES; the rest was never read
    latency_ms: int = 0

    def retry_after(self, *, now: datetime | None = None) -> float | None:
        """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
        value = self.headers.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def post(url: str, *, body: bytes, headers: Mapping[str, str], timeout: float, allow_private: bool,
         ssl_context: ssl.SSLContext | None = None, pool: ConnectionPool | None = None) -> Response:
    return request("POST", url, body=body, headers=headers, timeout=timeout, allow_private=allow_private,
                   ssl_context=ssl_context, pool=pool)


def request(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None,
            timeout: float, allow_private: bool, ssl_context: ssl.SSLContext | None = None,
            max_response_bytes: int = MAX_RESPONSE_BYTES, pool: ConnectionPool | None = None) -> Response:
    """Send one request and return the response (any status, 3xx included: nothing is followed).

    Raises an OutboundError subclass when there is no response; its `latency_ms` is set.
    `allow_private` lets loopback and private addresses through (local development and tests).
    With a `pool`, the connection is kept open afterwards and reused by the next request of this thread
    to the same scheme, host and port, if that request's own resolution and checks (made every time,
    as without a pool) validate the address it is connected to.
    """
    started = time.monotonic()
    try:
        target = parse_url(url)
        addresses = resolve(target, allow_private=allow_private)
        kept = pool.take(target, addresses, ssl_context) if pool is not None else None
        if kept is not None:
            try:
                return _exchange(method, target, addresses, body=body, headers=headers or {}, timeout=timeout,
                                 ssl_context=ssl_context, max_response_bytes=max_response_bytes, started=started,
                                 pool=pool, connection=kept)
            except _StaleConnection:
                pass  # the receiver closed it while idle, before reading anything: once more on a new one
        return _exchange(method, target, addresses, body=body, headers=headers or {}, timeout=timeout,
                         ssl_context=ssl_context, max_response_bytes=max_response_bytes, started=started, pool=pool)
    except OutboundError as exc:
        exc.latency_ms = _elapsed_ms(started)
        raise


class _StaleConnection(Exception):
    """A kept-alive connection found closed by the peer before any byte of a response came."""


class ConnectionPool:
    """Kept-alive connections for one thread each (http.client connections are not thread-safe).

    A connection is only ever reused for the same scheme, host, port and TLS context, and only when
    the address it is connected to is among the addresses just resolved and checked for the new
    request: the SSRF rules hold exactly as for a new connection. Idle connections older than
    MAX_IDLE_SECONDS are closed rather than reused (receivers close idle ones after a few seconds).
    """

    MAX_IDLE_SECONDS = 2.0
    MAX_PER_KEY = 4

    def __init__(self) -> None:
        self._local = threading.local()

    def _idle(self) -> dict:
        idle = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
        return idle

    @staticmethod
    def _key(target: Target, ssl_context: ssl.SSLContext | None) -> tuple:
        return target.scheme, target.host, target.port, id(ssl_context) if ssl_context is not None else None

    def take(self, target: Target, addresses: list[Address], ssl_context: ssl.SSLContext | None):
        kept = self._idle().get(self._key(target, ssl_context), [])
        now = time.monotonic()
        while kept:
            connection, since = kept.pop()
            if now - since <= self.MAX_IDLE_SECONDS and connection.address in addresses:
                return connection
            _close(connection)
        return None

    def give(self, target: Target, ssl_context: ssl.SSLContext | None, connection) -> None:
        kept = self._idle().setdefault(self._key(target, ssl_context), [])
        if len(kept) >= self.MAX_PER_KEY:
            _close(connection)
            return
        kept.append((connection, time.monotonic()))


def _close(connection) -> None:
    connection.close()
    if connection.opened is not None:
        connection.opened.close()


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _exchange(method: str, target: Target, addresses: list[Address], *, body: bytes | None, headers: Mapping[str, str],
              timeout: float, ssl_context: ssl.SSLContext | None, max_response_bytes: int,
              started: float, pool: ConnectionPool | None = None, connection=None) -> Response:
    deadline = started + timeout
    reused = connection is not None
    if reused:
        connection.deadline_set(deadline)
    elif target.scheme == "https":
        connection = _PinnedHTTPSConnection(target, addresses, deadline, ssl_context or ssl.create_default_context())
    else:
        connection = _PinnedHTTPConnection(target, addresses, deadline)
    watchdog = _Watchdog(connection, deadline)
    response = None
    keep = False
    try:
        extra = {} if pool is not None else {"Connection": "close"}
        try:
            connection.request(method, target.request_target, body=body, headers={**extra, **headers})
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            if reused and not watchdog.fired:
                raise _StaleConnection() from exc
            raise
        payload = response.read(max_response_bytes)
        if watchdog.fired:
            raise Timeout("The request timed out.")  # the read was cut short by the deadline
        # Reusable only when the whole body was read and neither side asked to close.
        # (A body-less answer, 204, reads as length 0 without http.client marking it closed.)
        keep = pool is not None and not response.will_close and (response.isclosed() or response.length == 0)
        return Response(status_code=response.status, body=payload, latency_ms=_elapsed_ms(started),
                        headers={name.lower(): value for name, value in response.getheaders()})
    except (OutboundError, _StaleConnection):
        raise
    except Exception as exc:  # every failure becomes one of our error classes
        raise _classify(exc, fired=watchdog.fired or time.monotonic() >= deadline) from exc
    finally:
        watchdog.cancel()
        keep = keep and not watchdog.fired
        if response is not None:
            response.close()  # its file only: a kept-alive socket stays with the connection
        if keep:
            pool.give(target, ssl_context, connection)
        else:
            _close(connection)  # http.client hands a `Connection: close` socket to the response


def _classify(exc: Exception, *, fired: bool) -> OutboundError:
    if fired or isinstance(exc, TimeoutError):
        return Timeout("The request timed out.")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return TlsError("The TLS handshake or certificate check failed.")
    if isinstance(exc, http.client.HTTPException):
        return ProtocolError("The answer was not valid HTTP.")
    return ConnectionFailed("The connection failed.")


def _open_socket(addresses: list[Address], deadline: float) -> tuple[socket.socket, Address]:
    """Connect to the first validated address that answers; never to anything else. Returns it too."""
    error: Exception = Timeout("The connection timed out.")
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("The connection timed out.")
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect(address.sockaddr)
        except TimeoutError:
            sock.close()
            error = Timeout("The connection timed out.")
        except OSError:
            sock.close()
            error = ConnectionFailed("The connection failed.")
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, address
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """http.client with the socket opened to a validated address; Host stays the URL's host."""

    def __init__(self, target: Target, addresses: list[Address], deadline: float) -> None:
        super().__init__(target.host, target.port, timeout=max(0.001, deadline - time.monotonic()))
        self._addresses, self._deadline = addresses, deadline
        self.opened: socket.socket | None = None  # kept: http.client drops `sock` once the response owns it
        self.address: Address | None = None  # the validated address connected to

    def connect(self) -> None:
        self.sock, self.address = _open_socket(self._addresses, self._deadline)
        self.opened = self.sock

    def deadline_set(self, deadline: float) -> None:
        """A kept-alive connection's next request: its own deadline, as a new connection would have."""
        self._deadline = deadline
        if self.sock is not None:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS: SNI and certificate verification use the URL's host name, not the address."""

    def __init__(self, target: Target, addresses: list[Address], deadline: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=max(0.001, deadline - time.monotonic()), context=context)
        self._addresses, self._deadline = addresses, deadline
        self.opened: socket.socket | None = None
        self.address: Address | None = None

    def connect(self) -> None:
        sock, self.address = _open_socket(self._addresses, self._deadline)
        self.opened = sock
        self.sock = self.opened = self._context.wrap_socket(sock, server_hostname=self.host)

    deadline_set = _PinnedHTTPConnection.deadline_set


class _Deadlines:
    """One thread per process that calls each registered callback at its deadline, unless canceled.

    Instead of a threading.Timer per request: starting a thread costs more than a request to a
    receiver on the same network. Canceled entries stay in the heap until due (at most `timeout` s)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list = []
        self._order = itertools.count()
        self._pid: int | None = None

    def add(self, deadline: float, callback) -> list:
        entry = [deadline, next(self._order), callback]
        with self._condition:
            if self._pid != os.getpid():  # first use in this process (a forked worker child has no thread)
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="outbound-deadlines", daemon=True).start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[2] = None

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._condition.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                callback = heapq.heappop(self._heap)[2]
            if callback is not None:
                callback()


_DEADLINES = _Deadlines()


class _Watchdog:
    """Shuts the connection's socket down at the deadline, so one slow receiver cannot outlast `timeout`."""

    def __init__(self, connection: _PinnedHTTPConnection | _PinnedHTTPSConnection, deadline: float) -> None:
        self.fired = False
        self._connection = connection
        self._entry = _DEADLINES.add(deadline, self._fire)

    def _fire(self) -> None:
        self.fired = True
        sock = self._connection.opened
        if sock is not None:
            try:
                # socket.socket.shutdown also for an SSLSocket: the fd is shut, the TLS object left alone.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        _DEADLINES.cancel(self._entry)
