"""The client address of a request: the socket peer, or, behind a trusted proxy,
the right-most X-Forwarded-For address that is not itself a trusted proxy.

The left-most X-Forwarded-For values are whatever the client wrote, so they are
never believed; a malformed chain yields no address at all (callers deny).
From a peer that is not a trusted proxy no forwarding header is believed at all
(forwarding_headers_strip): not the address, not the scheme, not the host.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=4096)
def parse_ip(value: str) -> IPAddress | None:
    """Parse one address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4.

    Cached: every request parses its peer's address, and a server sees the same few peers (its proxies)
    over and over; the addresses are immutable."""
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1 and "." in value:  # "203.0.113.9:5555"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8)
def _trusted(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def is_trusted_proxy(address: IPAddress) -> bool:
    return any(address.version == net.version and address in net for net in _trusted(tuple(settings.TRUSTED_PROXIES)))


# Request headers (as META names) by which a proxy tells who the client is and how it connected.
FORWARDING_HEADER_PREFIX = "HTTP_X_FORWARDED_"  # -For, -Proto, -Ssl, -Protocol, -Host, -Port, -Prefix...
FORWARDING_HEADERS = frozenset({
    "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_CLIENT_IP", "HTTP_CLIENT_IP", "HTTP_TRUE_CLIENT_IP",
    "HTTP_X_CLUSTER_CLIENT_IP", "HTTP_X_ORIGINAL_FORWARDED_FOR", "HTTP_X_URL_SCHEME", "HTTP_FRONT_END_HTTPS",
})


def peer_is_trusted_proxy(remote_addr: str | None) -> bool:
    peer = parse_ip(remote_addr or "")
    return peer is not None and is_trusted_proxy(peer)


def forwarding_headers_strip(meta: dict) -> None:
    """Remove every forwarding header from a request's META (what a client that is not our proxy
    wrote about itself), so that nothing downstream, Django's SECURE_PROXY_SSL_HEADER included, reads it."""
    for name in [name for name in meta if name.startswith(FORWARDING_HEADER_PREFIX) or name in FORWARDING_HEADERS]:
        del meta[name]


def client_ip(remote_addr: str | None, forwarded_for: str | None) -> IPAddress | None:
    peer = parse_ip(remote_addr or "")
    if peer is None or not is_trusted_proxy(peer):
        return peer
    if forwarded_for is None or not forwarded_for.strip():
        return peer  # a trusted proxy that added nothing: the proxy itself is the client
    hops = [part.strip() for part in forwarded_for.split(",")]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return None  # garbage in the chain we are asked to believe: fail closed
        if not is_trusted_proxy(address):
            return address
    return None  # every hop is one of our proxies: nothing left to identify the client
