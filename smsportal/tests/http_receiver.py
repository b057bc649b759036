"""A real HTTP receiver on loopback for outbound tests: records every request, answers from a script.

    with Receiver() as receiver:
        receiver.answer(500)                 # the next request gets a 500 ...
        receiver.answer(302, headers={"Location": other.url()})
        receiver.answer(200, delay=2.0)      # ... this one waits 2 s before answering
        outbound.post(receiver.url("/hook"), ...)
        receiver.requests[0].headers["webhook-id"]

Unscripted requests get `default` (200). A `delay` is cut short when the receiver stops, so a
test that gave up on a slow answer does not wait for it. With `tls=(certfile, keyfile)` it speaks
HTTPS and records the SNI name each handshake asked for.
"""
from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    drip: float = 0.0  # seconds between body bytes (a receiver that sends its body one byte at a time)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when it arrived


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up on a slow answer is what some tests do on purpose


class Receiver:
    def __init__(self, *, default: Answer | None = None, tls: tuple[str, str] | None = None) -> None:
        self.default = default or Answer()
        self.requests: list[Request] = []
        self.sni_names: list[str | None] = []
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            context.sni_callback = lambda _sock, name, _ctx: self.sni_names.append(name)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def answer(self, status: int = 200, **kwargs) -> Receiver:
        self._script.append(Answer(status, **kwargs))
        return self

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever, so only when it runs
        self._server.server_close()

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                                 body, time.monotonic()))
                answer = receiver._next_answer()
                if answer.delay and receiver._stopping.wait(answer.delay):
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if not answer.drip:
                    self.wfile.write(answer.body)
                    return
                for byte in answer.body:
                    if receiver._stopping.wait(answer.drip):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            do_POST = do_GET = do_PUT = _handle

        return Handler


def self_signed_certificate(directory, hostname: str) -> tuple[str, str]:
    """A throwaway certificate for `hostname` (and 127.0.0.1): (certfile, keyfile) in `directory`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


class FakeNetwork:
    """A scripted resolver and a connect spy, for SSRF tests that never leave loopback (RELIABILITY §0).

    `resolve(host, [ips of call 1], [ips of call 2], ...)` scripts socket.getaddrinfo for a name (the
    last answer repeats); other names fail as unknown, IP literals and `localhost` resolve for real.
    Every socket.socket.connect is recorded in `connects` (the address asked for), and a connect to
    an address given to `route(ip, receiver)` is sent to that loopback receiver instead, so a
    "public" test address can answer. The project-wide guard still refuses anything but loopback.
    """

    def __init__(self, monkeypatch) -> None:
        import socket

        self.answers: dict[str, list[list[str]]] = {}
        self.resolutions: list[str] = []
        self.connects: list[tuple] = []
        self.routes: dict[str, int] = {}
        real_getaddrinfo, guarded_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in self.answers:
                if name == "localhost" or _is_ip(name):
                    return real_getaddrinfo(host, port, family, type, proto, flags)
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            self.resolutions.append(name)
            script = self.answers[name]
            ips = script.pop(0) if len(script) > 1 else script[0]
            return [_info(ip, int(port)) for ip in ips]

        def connect(sock, address):
            self.connects.append(address)
            if isinstance(address, tuple) and address[0] in self.routes:
                address = ("127.0.0.1", self.routes[address[0]])
            return guarded_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)

    def resolve(self, host: str, *answers: list[str]) -> FakeNetwork:
        self.answers[host] = [list(a) for a in answers]
        return self

    def route(self, ip: str, receiver: Receiver) -> FakeNetwork:
        self.routes[ip] = receiver.port
        return self


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return True


def _info(ip: str, port: int) -> tuple:
    import socket

    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
