"""The License Portal client: portal API v1, with retries that never repeat a business refusal.

Each attempt runs in a worker thread (``portal_http``) and is bounded as a whole
by ``portal.timeout``: at its deadline the caller shuts the socket, whatever the
portal is sending. An operation, all its retries included, is bounded by
``portal.deadline``. Connection errors, timeouts, 5xx and 429 are retried with
exponential backoff and full jitter, honouring Retry-After; an answer that is
not JSON or is too large is retried once (``PortalBadAnswer``); a redirect is
never followed (``PortalRedirected``); a problem answer (4xx with a ``code``) is
final. Text from the portal is cleaned before anyone stores, logs or prints it.
All attempts of one call carry the same ``request_id``, so the portal answers a
retry with the result it already gave. The configuration is read at each
attempt, so a reload reaches the retries of a running call.

The HTTP stack (``portal_http``, http.client, the TLS trust store) is loaded at the
first call: a node that never calls the portal does not hold it in memory.
"""

from __future__ import annotations

import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from paragon_licensed import text
from paragon_licensed.daemon import log
from paragon_licensed.daemon.config import PortalConfig
from paragon_licensed.interface.errors import (
    PortalBadAnswer,
    PortalNotConfigured,
    PortalRedirected,
    PortalRejected,
    PortalUnreachable,
)

if TYPE_CHECKING:
    from paragon_licensed.daemon.portal_http import Reply, Transport

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
BAD_ANSWER_ATTEMPTS = 2  # a garbled answer may be a proxy's hiccup once; twice, it is what answers


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class _Transient(Exception):
    """An attempt that may succeed when repeated."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _BadAnswer(_Transient):
    """Not an answer of the portal API (not JSON, too large): repeated at most once."""


class _Missing(Exception):
    """404 or 405 to a call the portal may not know (an endpoint newer than the portal)."""


class PortalClient:
    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self._limiter = anyio.CapacityLimiter(config.max_concurrency)
        self._transport: Transport | None = None  # made at the first call
        self.calls = 0
        # Told each attempt's duration and whether it was answered (the daemon's metrics).
        self.observe: Callable[[float, bool], None] = lambda seconds, answered: None

    @staticmethod
    def _make_transport(config: PortalConfig) -> Transport:
        from paragon_licensed.daemon.portal_http import Transport

        return Transport(config.ca_bundle, config.timeout, config.max_response)

    def reconfigure(self, config: PortalConfig) -> None:
        """Apply a reloaded [portal] section; calls in progress use it from their next attempt."""
        if (config.ca_bundle, config.timeout, config.max_response) != (
            self.config.ca_bundle,
            self.config.timeout,
            self.config.max_response,
        ):
            self._transport = None  # made again, with the new settings, at the next attempt
        self._limiter.total_tokens = config.max_concurrency
        self.config = config

    @property
    def url(self) -> str:
        return self.config.url.rstrip("/")

    async def post(
        self, path: str, body: dict[str, Any], what: str, guard: Callable[[], object] | None = None
    ) -> dict[str, Any]:
        """POST with retries; `guard` runs before every attempt and may raise to stop them
        (the coordinator checks that its lease is still current)."""
        return await self._call(
            "POST", path, json.dumps(body).encode(), body.get("request_id", ""), what, guard
        )

    async def get(self, path: str, query: dict[str, str], what: str) -> dict[str, Any]:
        return await self._call("GET", f"{path}?{urllib.parse.urlencode(query)}", None, "", what)

    async def query(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any] | None:
        """POST a read (no request_id, retried like any call); None when the portal does not
        have the endpoint: it answers 404 or 405, whatever the body."""
        try:
            return await self._call("POST", path, json.dumps(body).encode(), "", what, missing_ok=True)
        except _Missing:
            return None

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        request_id: str,
        what: str,
        guard: Callable[[], object] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        started = time.monotonic()
        attempt = bad_answers = 0
        while True:
            attempt += 1
            config, url = self.config, self.url
            if not url:
                raise PortalNotConfigured()
            if guard is not None:
                guard()
            left = config.deadline - (time.monotonic() - started)
            try:
                timeout = max(0.1, min(config.timeout, left))
                answer = await self._attempt(method, url + path, body, timeout, missing_ok)
            except _Transient as exc:
                bad_answers += isinstance(exc, _BadAnswer)
                if bad_answers >= BAD_ANSWER_ATTEMPTS:
                    raise PortalBadAnswer(url=url, reason=exc.reason) from None
                delay = self._delay(attempt, exc.retry_after)
                left = config.deadline - (time.monotonic() - started)
                if attempt >= config.max_attempts or delay >= left:
                    if isinstance(exc, _BadAnswer):
                        raise PortalBadAnswer(url=url, reason=exc.reason) from None
                    raise PortalUnreachable(url=url, reason=exc.reason) from None
                log.warning(
                    "portal call failed, retrying",
                    call=what,
                    attempt=attempt,
                    reason=exc.reason,
                    retry_in=f"{delay:.1f}s",
                    request_id=request_id,
                )
                await anyio.sleep(delay)
                continue
            if 200 <= answer.status < 300:
                return answer.body
            raise PortalRejected(code=_code(answer), message=_message(answer))

    async def _attempt(
        self, method: str, url: str, body: bytes | None, timeout: float, missing_ok: bool = False
    ) -> Answer:
        """One exchange in a worker thread; at the deadline its socket is shut, ending the thread."""
        import http.client

        from paragon_licensed.daemon.portal_http import Abort, TooLarge

        abort = Abort()
        transport = self._transport
        if transport is None:
            try:
                transport = self._transport = self._make_transport(self.config)
            except (OSError, ssl.SSLError) as exc:  # the trust store, read now
                reason = text.clean(_describe(exc), 200)
                raise PortalUnreachable(
                    url=self.url, reason=f"cannot load the CA certificates (portal.ca_bundle): {reason}"
                ) from None
        self.calls += 1
        finished = False
        async with self._limiter:
            began = time.monotonic()  # the attempt itself, not its wait for a slot
            try:
                with anyio.fail_after(timeout):
                    reply = await anyio.to_thread.run_sync(
                        transport.exchange, method, url, body, abort, abandon_on_cancel=True
                    )
                finished = True
            except TimeoutError:
                raise _Transient(f"no complete answer within {timeout:g} s") from None
            except ssl.SSLCertVerificationError as exc:
                reason = text.clean(exc.verify_message or exc.reason or exc, 200)
                raise PortalUnreachable(
                    url=self.url, reason=f"TLS verification failed: certificate verify failed: {reason}"
                ) from None
            except ssl.SSLError as exc:
                raise _Transient(f"TLS failed: {text.clean(exc.reason or exc, 200)}") from None
            except TooLarge as exc:
                raise _BadAnswer(f"{exc} (portal.max_response)") from None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise _Transient(f"connection failed: {text.clean(_describe(exc), 200)}") from None
            finally:
                if not finished:  # timed out or cancelled: the abandoned thread must not go on
                    abort.abort()
                self.observe(time.monotonic() - began, finished)
        if missing_ok and reply.status in (404, 405):
            raise _Missing()
        return _answer(reply, self.url)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff)
        ceiling = min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _answer(reply: Reply, url: str) -> Answer:
    """The parsed answer, or the reason it is not one."""
    if 300 <= reply.status < 400:
        location = text.clean(reply.headers.get("location") or "nowhere (no Location header)", 300)
        raise PortalRedirected(url=url, location=location)
    if reply.status in _RETRY_STATUS:
        raise _Transient(f"HTTP {reply.status}", _retry_after(reply))
    try:
        parsed = json.loads(reply.body)
    except (ValueError, RecursionError):
        raise _BadAnswer(f"HTTP {reply.status} without a JSON body") from None
    if not isinstance(parsed, dict):
        raise _BadAnswer(f"HTTP {reply.status} with a JSON body that is not an object")
    return Answer(reply.status, parsed)


def _code(answer: Answer) -> str:
    code = str(answer.body.get("code") or f"http_{answer.status}")[:64].lower()
    return code if code and set(code) <= _CODE_CHARS else f"http_{answer.status}"


def _message(answer: Answer) -> str:
    return text.clean(answer.body.get("detail") or answer.body.get("title") or "no detail given")


def _retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
