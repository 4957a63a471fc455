"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for S3 servers that cannot be told to misbehave.

``FaultProxy(upstream)`` forwards every request to ``upstream`` (``http://127.0.0.1:port``) unchanged (the
``Host`` header too, so S3 signatures still match) and answers with the upstream's response, except for
requests that match a :class:`Fault` of its script: those get a scripted failure instead, ``times`` times::

    with FaultProxy(s3.endpoint_url) as proxy:
        proxy.add(Fault("PUT", r"partNumber=", "slowdown", times=3))
        client = boto3.client("s3", endpoint_url=proxy.url, ...)

Actions: ``"slowdown"`` (503 SlowDown XML), ``"500"`` (500 InternalError XML), ``"throttle"`` (400 Throttling
XML, as some S3-compatible stores answer), ``"429"`` (429 TooManyRequests), ``"reset"`` (the connection is
reset before any answer), ``"truncate"`` (the upstream's answer, cut short after half its body) and
``"delay"`` (the upstream's answer, ``delay`` seconds late). ``proxy.hits`` records every injected fault.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}

_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "throttle": (400, "Throttling", "Rate exceeded"),
    "429": (429, "TooManyRequests", "Too many requests"),
}
ACTIONS = (*_ERRORS, "reset", "truncate", "delay")


@dataclass
class Fault:
    """Fail the next ``times`` requests whose method and path (with query) match.

    :param method: HTTP method (``GET``, ``PUT``, ``POST``, ``HEAD``, ``DELETE``) or ``*``.
    :param path: a regular expression searched in the path and query (``/bucket/key?partNumber=2``).
    :param action: one of :data:`ACTIONS`.
    :param times: how many matching requests fail.
    :param delay: seconds of delay for ``"delay"``.
    """

    method: str
    path: str
    action: str
    times: int = 1
    delay: float = 0.0
    left: int = field(init=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; use one of {ACTIONS}")
        self.left = self.times

    def matches(self, method: str, path: str) -> bool:
        return self.left > 0 and self.method in ("*", method) and re.search(self.path, path) is not None


class FaultProxy:
    """A threaded reverse proxy in front of ``upstream`` with a controllable fault script."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.faults: list[Fault] = []
        self.hits: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="faultproxy", daemon=True)

    # ------------------------------------------------------------------------------------------ control
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.hits.clear()
            self.requests.clear()

    def pending(self) -> int:
        """Return how many scripted failures have not happened yet."""
        with self._lock:
            return sum(f.left for f in self.faults)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for f in self.faults:
                if f.matches(method, path):
                    f.left -= 1
                    self.hits.append((method, path, f.action))
                    return f
        return None

    # ---------------------------------------------------------------------------------------- serving
    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = h.rfile.readline()
                out += line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        t = h.rfile.readline()
                        out += t
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(out)
                out += h.rfile.read(size + 2)
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    @staticmethod
    def _reset(h: BaseHTTPRequestHandler) -> None:
        sock = h.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        sock.close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        body = self._read_body(h)
        fault = self._take(h.command, h.path)
        action = fault.action if fault else None
        if action == "reset":
            self._reset(h)
            return
        if action in _ERRORS:
            status, code, message = _ERRORS[action]
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId>"
                "</Error>"
            ).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(xml)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(xml)
            return
        if action == "delay" and fault is not None:
            time.sleep(fault.delay)
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            # Expect: 100-continue was answered here already (and is not signed)
            headers = {k: v for k, v in h.headers.items() if k.lower() != "expect"}
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
            upstream_length = int(resp.getheader("Content-Length") or 0)
        finally:
            conn.close()
        h.send_response(status, reason)
        for k, v in resp_headers:
            if k.lower() not in _HOP and k.lower() != "content-length":
                h.send_header(k, v)
        length = len(data) if h.command != "HEAD" else upstream_length
        h.send_header("Content-Length", str(length))
        h.end_headers()
        if h.command == "HEAD":
            return
        if action == "truncate":
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            self._reset(h)
            return
        h.wfile.write(data)
