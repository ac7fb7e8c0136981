"""The License Portal client: portal API v1 over HTTPS, with retries that never repeat a business refusal.

Each attempt runs in a worker thread (requests blocks). Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff and full jitter,
honouring Retry-After; a problem answer (4xx with a ``code``) is final. All
attempts of one call carry the same ``request_id``, so the portal answers a
retry with the result it already gave.
"""

from __future__ import annotations

import os
import random
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from paragon_licensed.daemon import log
from paragon_licensed.daemon.config import PortalConfig
from paragon_licensed.daemon.protocol import PortalNotConfigured, PortalRejected, PortalUnreachable

if TYPE_CHECKING:
    import requests

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: float | None = None


class _Transient(Exception):
    """An attempt that may succeed when repeated."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Unreachable(Exception):
    """An attempt that repeating cannot fix (the certificate does not verify)."""


class PortalClient:
    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.url = config.url.rstrip("/")
        self._limiter = anyio.CapacityLimiter(config.max_concurrency)
        self._local = threading.local()
        self.calls = 0
        self._verify = config.ca_bundle or system_ca_bundle()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = "paragon-licensed"
            # The environment is read once here, not on every request (it costs a lot of CPU when
            # thousands of tenants are renewed): proxies as the environment sets them for the portal.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(self.url)
            self._local.session = session
        return session

    async def post(
        self, path: str, body: dict[str, Any], what: str, guard: Callable[[], object] | None = None
    ) -> dict[str, Any]:
        """POST with retries; `guard` runs before every attempt and may raise to stop them
        (the coordinator checks that its lease is still current)."""
        return await self._call("POST", path, body, None, what, guard)

    async def get(self, path: str, query: dict[str, str], what: str) -> dict[str, Any]:
        return await self._call("GET", path, None, query, what)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        query: dict[str, str] | None,
        what: str,
        guard: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        if not self.url:
            raise PortalNotConfigured()
        request_id = (body or {}).get("request_id", "")
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            if guard is not None:
                guard()
            try:
                async with self._limiter:
                    answer = await anyio.to_thread.run_sync(
                        self._attempt, method, path, body, query, abandon_on_cancel=True
                    )
            except _Unreachable as exc:
                raise PortalUnreachable(url=self.url, reason=str(exc)) from None
            except _Transient as exc:
                if attempt == attempts:
                    raise PortalUnreachable(url=self.url, reason=exc.reason) from None
                delay = self._delay(attempt, exc.retry_after)
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
            code = str(answer.body.get("code") or f"http_{answer.status}")
            message = str(answer.body.get("detail") or answer.body.get("title") or "no detail given")
            raise PortalRejected(code=code, message=message)
        raise AssertionError("unreachable: the loop returns or raises")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff)
        ceiling = min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _attempt(
        self, method: str, path: str, body: dict[str, Any] | None, query: dict[str, str] | None
    ) -> Answer:
        import requests

        self.calls += 1
        session = self._session()
        try:
            # Prepared directly and sent: the session has nothing to merge in (no cookies, no
            # environment), and skipping that saves a good part of each call's CPU time.
            prepared = requests.Request(
                method, self.url + path, json=body, params=query, headers=session.headers
            ).prepare()
            response = session.send(
                prepared, timeout=self.config.timeout, verify=self._verify, proxies=session.proxies
            )
        except requests.exceptions.SSLError as exc:
            raise _Unreachable(f"TLS verification failed: {_short(exc)}") from None
        except requests.exceptions.Timeout:
            raise _Transient(f"no answer within {self.config.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise _Transient(f"connection failed: {_short(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise _Transient(_short(exc)) from None
        if response.status_code in _RETRY_STATUS:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
        try:
            parsed = response.json()
        except ValueError:
            raise _Transient(f"HTTP {response.status_code} without a JSON body") from None
        if not isinstance(parsed, dict):
            raise _Transient(f"HTTP {response.status_code} with an unexpected body")
        return Answer(response.status_code, parsed)


def system_ca_bundle() -> str | bool:
    """The system trust store OpenSSL uses (not the bundle shipped with requests), when there is one."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return True


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc)
    verify = re.search(r"certificate verify failed: ([^(']+)", text)
    if verify:
        return f"certificate verify failed: {verify.group(1).strip()}"
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:200] or type(exc).__name__
