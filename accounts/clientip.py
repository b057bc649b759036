"""The client address of a request: the socket peer, or, behind a trusted proxy,
the right-most X-Forwarded-For address that is not itself a trusted proxy.

The left-most X-Forwarded-For values are whatever the client wrote, so they are
never believed; a malformed chain yields no address at all (callers deny).
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: str) -> IPAddress | None:
    """Parse one address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4."""
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
