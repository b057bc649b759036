"""A TCP proxy on loopback that a test can cut: network faults between the app and PostgreSQL, Redis
or a carrier without `tc` or toxiproxy (../shared/RELIABILITY.md, "fault proxy").

    with FaultProxy(("127.0.0.1", 5432)) as proxy:   # the app connects to proxy.port
        proxy.cut()        # open connections are reset, new ones are accepted and closed at once
        proxy.hang()       # new connections are accepted and never answered (a black hole)
        proxy.restore()    # forward again

Threads, not asyncio: it runs beside pytest's own thread, one pump thread per direction per connection.
"""
from __future__ import annotations

import socket
import struct
import threading

FORWARD, CUT, HANG = "forward", "cut", "hang"


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a dead peer or a firewall does; shutdown first wakes a pump blocked in recv."""
    for step in (lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
                 lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            step()
        except OSError:
            pass


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = FORWARD
        self.accepted = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cut(self) -> None:
        with self._lock:
            self.mode = CUT
            sockets, self._open = self._open, set()
        for sock in sockets:
            _reset(sock)

    def hang(self) -> None:
        with self._lock:
            self.mode = HANG

    def restore(self) -> None:
        with self._lock:
            self.mode = FORWARD

    def close(self) -> None:
        self.cut()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self.accepted += 1
            with self._lock:
                mode = self.mode
                if mode != CUT:
                    self._open.add(client)
            if mode == CUT:
                _reset(client)
            elif mode == FORWARD:
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()
            # HANG: kept open and never read, until cut() or close()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._drop(client)
            return
        server.settimeout(None)
        with self._lock:
            if self.mode != FORWARD:
                self._open.discard(client)
                _reset(client)
                _reset(server)
                return
            self._open.add(server)
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        self._drop(source)
        self._drop(target)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.close()
        except OSError:
            pass
