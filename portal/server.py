"""The portal's HTTP server: routes API v1 requests to the service, answers JSON or problems.

``/offline`` is the offline activation page (``offline_page``), answered in HTML.

Threads from the standard library's ThreadingHTTPServer, HTTP/1.1 keep-alive, and one
write per response (headers and body together, Nagle off) so a small answer never waits
for a delayed ACK.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import msgspec

from paragon_licensed.portal import messages, offline_page, requestlog
from paragon_licensed.portal.faults import Faults
from paragon_licensed.portal.messages import API_PREFIX
from paragon_licensed.portal.problems import RETRY_CODES, Problem
from paragon_licensed.portal.requestlog import RequestRecord
from paragon_licensed.portal.service import PortalService

MAX_BODY: Final = 1024 * 1024
IDLE_TIMEOUT: Final = 120.0  # seconds a keep-alive connection may stay silent

# POST path -> request kind; every kind has its handler in PortalService.call.
POST_ROUTES: Final = {API_PREFIX + path: kind for kind, path in messages.PATHS.items()}
GET_ROUTES: Final = frozenset({f"{API_PREFIX}/licenses/current"})
QUERY_ROUTE: Final = API_PREFIX + messages.QUERY_PATH  # POST, read-only: no request ID, nothing stored

log = logging.getLogger("paragon_licensed.portal")


class PortalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the service and the testing aids."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        service: PortalService,
        faults: Faults,
        *,
        ssl_context: ssl.SSLContext | None = None,
        access_log: bool = False,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, PortalHandler)
        self.service = service
        self.faults = faults
        self.access_log = access_log
        self.scheme = "http"
        if ssl_context is not None:
            # The handshake runs in the connection's thread (on its first read), so a
            # slow or broken client cannot stall the accepting loop.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        shown = f"[{name}]" if ":" in name else name
        return f"{self.scheme}://{shown}:{port}{API_PREFIX}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets and failed TLS handshakes are the client's business: one line, no traceback.
        error = sys.exc_info()[1]
        debug = log.isEnabledFor(logging.DEBUG)
        log.warning("connection from %s failed: %s", client_address[0], error, exc_info=debug)


class PortalHandler(BaseHTTPRequestHandler):
    """One connection; each request is routed by method and path."""

    server: PortalHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "paragon-license-portal"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and body leave in one send, flushed per request
    timeout = IDLE_TIMEOUT

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.access_log:
            log.info("%s %s", self.address_string(), format % args)

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        path, _, query = self.path.partition("?")
        if path == offline_page.PATH:
            self._page(method)
            return
        record = RequestRecord(method=method, path=path)
        headers: dict[str, str] = {}
        try:
            raw = self._read_body()
            if path.startswith(API_PREFIX + "/"):
                # The testing aids come first: an injected failure records nothing but its
                # log entry, and the latency is outside any lock.
                self.server.faults.delay()
                started = time.perf_counter()
                injected = self.server.faults.injected()
                if injected is not None:
                    record.injected = True
                    _describe_any(record, path, query, raw)
                    raise injected
            status, body = self._route(method, path, query, raw, record, started)
        except Problem as problem:
            status, body = self._refuse(problem, record, headers, started)
        except Exception:
            log.exception("%s %s failed", method, path)
            internal = Problem("internal", "the portal failed to answer; try again later")
            status, body = self._refuse(internal, record, headers, started)
        self._send(status, body, headers)

    def _page(self, method: str) -> None:
        """The offline activation page: every answer, refusals included, is HTML."""
        try:
            raw = self._read_body()
            answer = offline_page.handle(
                self.server.service, method, self.headers.get("Content-Type", ""), raw
            )
        except Problem as problem:
            answer = offline_page.page(problem)
        except Exception:
            log.exception("%s %s failed", method, offline_page.PATH)
            answer = offline_page.page(Problem("internal", "the portal failed to answer; try again later"))
        self._send(answer.status, answer.body, answer.headers, answer.content_type)

    def _refuse(
        self, problem: Problem, record: RequestRecord, headers: dict[str, str], started: float
    ) -> tuple[int, bytes]:
        record.status, record.code = problem.status, problem.code
        if problem.code in RETRY_CODES:
            headers["Retry-After"] = str(self.server.faults.retry_after)
        if problem.code == "method_not_allowed":
            headers["Allow"] = "GET" if record.path in GET_ROUTES else "POST"
        self._log(record, started)
        return problem.status, problem.encode()

    def _route(
        self, method: str, path: str, query: str, raw: bytes, record: RequestRecord, started: float
    ) -> tuple[int, bytes]:
        if path == QUERY_ROUTE and not self.server.faults.without_query:
            if method != "POST":
                raise Problem("method_not_allowed", f"{path} does not answer {method}")
            return 200, self._query(raw, record, started)
        kind = POST_ROUTES.get(path)
        if kind is not None and method == "POST":
            data = messages.parse_json(raw)
            requestlog.describe(record, data, path)
            outcome = self.server.service.call(kind, data, record, started)
            if outcome.status == 200:
                self.server.faults.hold()
            return outcome.status, outcome.body
        if path in GET_ROUTES and method == "GET":
            return 200, self._current(query, record, started)
        if kind is not None or path in GET_ROUTES:
            raise Problem("method_not_allowed", f"{path} does not answer {method}")
        raise Problem("not_found", f"no such API path: {path}")

    def _current(self, query: str, record: RequestRecord, started: float) -> bytes:
        tenant_id, integrity_key = _describe_query(record, query)
        for name, value in (("tenant_id", tenant_id), ("integrity_key", integrity_key)):
            if not value:
                raise Problem("bad_request", f"the query parameter `{name}` is required")
        answer = self.server.service.current_license(tenant_id, integrity_key)
        record.status, record.license_id = 200, answer["license_id"]
        self._log(record, started)
        return msgspec.json.encode(answer)

    def _query(self, raw: bytes, record: RequestRecord, started: float) -> bytes:
        data = messages.parse_json(raw)
        requestlog.describe(record, data, record.path)
        answer = self.server.service.current_licenses(messages.convert_query(data))
        record.status = 200
        self._log(record, started)
        return msgspec.json.encode({"tenants": answer})

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise Problem("bad_request", "chunked request bodies are not supported")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            raise Problem("bad_request", "the Content-Length header is not a number") from None
        if length > MAX_BODY or length < 0:
            self.close_connection = True  # the unread body would be taken for the next request
            raise Problem("payload_too_large", f"a request body may hold at most {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _log(self, record: RequestRecord, started: float) -> None:
        record.handling_ms = (time.perf_counter() - started) * 1000
        try:
            self.server.service.db.log_request(record)
        except Exception:
            log.exception("could not write the request log")

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], content_type: str | None = None
    ) -> None:
        if content_type is None:
            content_type = "application/problem+json" if status >= 400 else "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _describe_query(record: RequestRecord, query: str) -> tuple[str, str]:
    params = urllib.parse.parse_qs(query)
    tenant_id = params.get("tenant_id", [""])[0]
    integrity_key = params.get("integrity_key", [""])[0]
    record.tenant_id = tenant_id or None
    record.integrity_key = integrity_key or None
    return tenant_id, integrity_key


def _describe_any(record: RequestRecord, path: str, query: str, raw: bytes) -> None:
    """Fill the log entry of a request that will not be handled (an injected failure)."""
    if path in GET_ROUTES:
        _describe_query(record, query)
        return
    try:
        data = messages.parse_json(raw)
    except Problem:
        return
    requestlog.describe(record, data, path)
