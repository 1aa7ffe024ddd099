"""A small HTTP proxy in front of the rig's registry that can misbehave on cue.

Tests point an image at ``127.0.0.1:<proxy port>/...``: every request is forwarded to the rig's
registry (``127.0.0.1:5000``), so the repositories are the registry's own, until the test tells
the proxy to refuse one tag's manifest PUT (403 ``DENIED``), to ask for a login on everything
(401 with a ``Www-Authenticate`` challenge), to answer 404 for one manifest digest, to drop
every connection, to drop only manifest PUTs, or to answer the first N manifest PUTs to one
repository with a registry error (400 ``BLOB_UNKNOWN``: what a registry says when two pushes race
on one layer; or a 5xx). It runs inside the test (threads) and never
touches the shared registry's process. Docker and buildx treat loopback registries as
plain-HTTP, so no TLS is needed (checked: buildx 0.13.1 reaches a new loopback port as is).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_MANIFEST_RE = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/?]+)$")


@dataclass
class Misbehaviour:
    """What the proxy does instead of forwarding; all off by default (a plain proxy)."""

    #: ``(repository path, tag)`` pairs whose manifest PUT gets 403 DENIED.
    refuse_put: set[tuple[str, str]] = field(default_factory=set)
    #: Every request gets 401 with a Basic challenge (a registry that needs a login).
    require_login: bool = False
    #: Manifest digests answered with 404 MANIFEST_UNKNOWN (as if deleted).
    missing: set[str] = field(default_factory=set)
    #: Every connection is closed without an answer.
    drop: bool = False
    #: Every manifest PUT (an index push) has its connection closed without an answer.
    drop_manifest_puts: bool = False
    #: Manifest PUTs to this repository path are answered with :attr:`reject_status` and
    #: :attr:`reject_code`, the first :attr:`reject_puts` of them (-1: every one).
    reject_repo: str | None = None
    reject_puts: int = 0
    reject_status: int = 400
    reject_code: str = "BLOB_UNKNOWN"
    #: Manifest PUTs answered so, counted as they come (the test reads it).
    rejected_puts: int = 0
    #: Seconds each manifest PUT to :attr:`reject_repo` waits before it is answered or
    #: forwarded (a slow registry: a push is still running when the test acts).
    delay_puts: float = 0.0


class RegistryProxy:
    """``with RegistryProxy(upstream) as proxy:`` — ``proxy.address`` is ``127.0.0.1:PORT``."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        """``port`` 0: a free one. Pass the port of an earlier proxy to bring "the registry"
        back up at the same address."""
        self.upstream = upstream
        self.rules = Misbehaviour()
        self.refused: list[str] = []  # "METHOD path" of every request answered with an error
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads `refused`, not a log

            def do_GET(self) -> None:
                proxy._handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"registry-proxy-{self.address}", daemon=True
        )

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and close the port (connections to it are refused from then on);
        returns once the server thread has ended. Stopping twice is harmless."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    @contextmanager
    def misbehaving(self, **rules: object) -> Iterator[Misbehaviour]:
        """Apply ``rules`` (fields of :class:`Misbehaviour`) for the ``with`` block only."""
        with self._lock:
            self.rules = Misbehaviour(**rules)  # type: ignore[arg-type]
        try:
            yield self.rules
        finally:
            with self._lock:
                self.rules = Misbehaviour()

    # ---- the forwarding ----------------------------------------------------------------------

    def _body(self, handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
    ) -> None:
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _error(
        self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str, **extra: str
    ) -> None:
        with self._lock:
            self.refused.append(f"{handler.command} {handler.path}")
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        headers = [("Content-Type", "application/json"), *extra.items()]
        self._answer(handler, status, body, headers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            rules = self.rules
        body = self._body(handler)
        manifest = _MANIFEST_RE.match(handler.path.split("?", 1)[0])
        if rules.drop or (
            rules.drop_manifest_puts and manifest is not None and handler.command == "PUT"
        ):
            with self._lock:
                self.refused.append(f"{handler.command} {handler.path} (dropped)")
            handler.close_connection = True
            with suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if rules.require_login:
            self._error(
                handler,
                401,
                "UNAUTHORIZED",
                "authentication required",
                **{"Www-Authenticate": f'Basic realm="{self.address}"'},
            )
            return
        if manifest is not None:
            repo, ref = manifest["repo"], manifest["ref"]
            if handler.command == "PUT" and rules.delay_puts and rules.reject_repo == repo:
                time.sleep(rules.delay_puts)
            if handler.command == "PUT" and self._reject_put(rules, repo):
                message = {"BLOB_UNKNOWN": "blob unknown to registry"}.get(
                    rules.reject_code, "the registry failed"
                )
                self._error(handler, rules.reject_status, rules.reject_code, message)
                return
            if handler.command == "PUT" and (repo, ref) in rules.refuse_put:
                self._error(
                    handler, 403, "DENIED", f"requested access to the resource is denied: {ref}"
                )
                return
            if ref in rules.missing:
                self._error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
        self._forward(handler, body)

    def _reject_put(self, rules: Misbehaviour, repo: str) -> bool:
        """Whether this manifest PUT to ``repo`` is one to reject (and count it if so)."""
        with self._lock:
            if rules.reject_repo != repo or rules.reject_puts == 0:
                return False
            if rules.reject_puts > 0:
                rules.reject_puts -= 1
            rules.rejected_puts += 1
            return True

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        host, _, port = self.upstream.partition(":")
        upstream = http.client.HTTPConnection(host, int(port or 80), timeout=60)
        try:
            # A header sent several times (docker's Accept, one per media type) goes on as one,
            # its values joined: a dict of them kept only the last, and a registry then
            # answered a manifest GET with MANIFEST_UNKNOWN (seen on the rig after a push).
            headers: dict[str, str] = {}
            for k, v in handler.headers.items():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "host":
                    headers[k] = f"{headers[k]}, {v}" if k in headers else v
            # The registry writes Location headers from Host: keep the client's, so uploads
            # come back through the proxy.
            headers["Host"] = handler.headers.get("Host") or self.address
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            resp = upstream.getresponse()
            data = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            if handler.command == "HEAD":
                # A HEAD answer carries the length the GET would have.
                length = resp.getheader("Content-Length")
                handler.send_response(resp.status)
                for name, value in kept:
                    handler.send_header(name, value)
                if length is not None:
                    handler.send_header("Content-Length", length)
                handler.end_headers()
                return
            self._answer(handler, resp.status, data, kept)
        finally:
            upstream.close()
