"""The test network guard: every TCP/UDP connect goes to loopback, and (in server processes) no DNS leaves the machine.

conftest.py installs the connect guard in the test process. A server process a test starts
(smsportal/tests/servers.py) installs both through `sitecustomize`: it serves requests that name
arbitrary hosts (webhook URLs), and glibc's resolver would otherwise ask the machine's name server.
"""
from __future__ import annotations

import ipaddress
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo
LOCAL_NAMES = {"localhost", "localhost.localdomain"}


def _guard(address) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            raise OSError(f"test network guard: connect to unresolved host {host!r} refused") from None
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if not ip.is_loopback:
            raise OSError(f"test network guard: connect to {host} refused (loopback only)")


def _guarded_connect(self, address):
    _guard(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _guard(address)
    return _real_connect_ex(self, address)


def _local_getaddrinfo(host, *args, **kwargs):
    """Names resolve only to loopback: an IP literal or localhost; any other name does not exist."""
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name.lower().rstrip(".") not in LOCAL_NAMES:
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "test network guard: no DNS off this machine") from None
    return _real_getaddrinfo(host, *args, **kwargs)


def install(*, resolver: bool = False) -> None:
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    if resolver:
        socket.getaddrinfo = _local_getaddrinfo
