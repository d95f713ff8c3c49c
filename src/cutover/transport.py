"""One HTTP path for both Microsoft services: sign-in, throttling, retries, read-only, redaction.

Rules, in the order a request meets them:
- A read-only transport refuses any non-GET request before anything is sent.
- Concurrency is adaptive (`AdaptiveLimit`): it starts from the service's `x-ms-dop-hint`
  (or the configured start), grows by one after a run of clean answers, and halves on a 429,
  so a long run settles just under the service-protection limits.
- 429 is always retried after `Retry-After` (the request was not processed); giving up on a
  throttle would lose work, so the only bound is a generous total wait.
- 401 refreshes the token once and retries; a second 401 is an `AuthenticationFailed`.
- 5xx and connection failures are retried, with exponential back-off and full jitter, only
  for idempotent requests (GET, and writes the caller marks idempotent, such as upserts to
  deterministic ids). A non-idempotent write that fails this way raises `OutcomeUnknown`:
  the caller must check before sending it again.
- Bodies are bytes the caller wrote (JSON through :func:`cutover.odata.dumps`, which refuses a
  float): the transport has no JSON encoder of its own, so there is one way money is written.
- Errors name the environment, the request and the fix; they never carry a token. Every error
  is a :class:`ServiceError`, an :class:`cutover.errors.EnvironmentProblem` (exit 3); an
  error answer's body is read by :func:`cutover.odata.error_of`, as everywhere else.
- Tokens come from a :class:`cutover.tokens.TokenSource`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from .errors import EnvironmentProblem
from .odata import error_of
from .redaction import redact
from .tokens import TokenSource

logger = logging.getLogger("cutover.transport")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


# --- errors -------------------------------------------------------------------------------------


class ServiceError(EnvironmentProblem):
    """A request that did not succeed. `str()` is for people: ``<environment>: <method> <url>:
    <cause and fix>`` — `where` is the environment and the request, `message` the rest (both
    redacted: no token or secret ever reaches a message)."""

    def __init__(
        self,
        environment: str,
        method: str,
        url: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ):
        self.environment = environment
        self.method = method
        self.url = redact(url)
        self.status = status
        self.code = code
        super().__init__(redact(message), where=f"{environment}: {method} {self.url}")


class ReadOnlyViolation(ServiceError):
    """A write attempted through a read-only client. Raised before anything is sent."""


class AuthenticationFailed(ServiceError):
    pass


class PermissionDenied(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class BadRequest(ServiceError):
    pass


class ServiceUnavailable(ServiceError):
    """5xx or connection failure that persisted through the retries."""


class ConnectionFailed(ServiceError):
    """The service could not be reached at all (DNS, refused, TLS)."""


class OutcomeUnknown(ServiceError):
    """A non-idempotent write whose answer was lost: it may or may not have been applied."""


def _error_text(response: httpx.Response) -> tuple[str | None, str]:
    return error_of(response.content, response.status_code, response.reason_phrase)


# --- adaptive concurrency ------------------------------------------------------------------------


class AdaptiveLimit:
    """A concurrency limit that grows while answers are clean and halves on throttling (AIMD)."""

    def __init__(
        self,
        start: int = 4,
        minimum: int = 1,
        maximum: int = 52,
        grow_after: int = 20,
        *,
        cut_interval: float = 1.0,
        clock=time.monotonic,
    ):
        self.limit = max(minimum, min(start, maximum))
        # Concurrent requests throttled by the same event answer 429 together: cut once per
        # event, not once per response, or one burst would collapse the limit to the minimum.
        self.cut_interval = cut_interval
        self.clock = clock
        self._last_cut: float | None = None
        self.minimum = minimum
        self.maximum = maximum
        self.grow_after = grow_after
        self.in_flight = 0
        self._clean = 0
        self._hinted = False
        self._cond = asyncio.Condition()
        self.throttles = 0

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def release(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    async def _set(self, value: int) -> None:
        async with self._cond:
            self.limit = max(self.minimum, min(value, self.maximum))
            self._cond.notify_all()

    async def succeeded(self, dop_hint: int | None) -> None:
        if dop_hint and not self._hinted:
            self._hinted = True
            self.maximum = min(self.maximum, max(dop_hint * 2, self.minimum))
            await self._set(dop_hint)
            return
        self._clean += 1
        if self._clean >= self.grow_after and self.limit < self.maximum:
            self._clean = 0
            await self._set(self.limit + 1)

    async def throttled(self) -> None:
        self.throttles += 1
        self._clean = 0
        now = self.clock()
        if self._last_cut is not None and now - self._last_cut < self.cut_interval:
            return
        self._last_cut = now
        await self._set(self.limit // 2)


# --- the transport ---------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    attempts: int = 5  # for 5xx / connection failures of idempotent requests
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_throttle_wait: float = 3600.0  # total seconds one request may spend waiting on 429s
    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})


@dataclass
class TransportStats:
    requests: int = 0
    throttled: int = 0
    retried: int = 0
    token_refreshes: int = 0
    waited_seconds: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass
class Attempts:
    """What one call of :meth:`Transport.request` went through; pass one to see it (the
    transport's `stats` add up every call, and concurrent calls share them).

    Times are ``time.monotonic()`` seconds."""

    throttled_at: list[float] = field(default_factory=list)  # when each 429 arrived
    waited: float = 0.0  # seconds slept between attempts (Retry-After, back-off)
    answered_in: float | None = None  # wall seconds of the last attempt sent (None: nothing was sent)

    @property
    def throttled(self) -> bool:
        return bool(self.throttled_at)


class Transport:
    """Authenticated, throttle-aware HTTP to one service root of one environment."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        environment: str,
        read_only: bool = False,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        limit: AdaptiveLimit | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        timeout: float = 120.0,
    ):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.tokens = tokens
        self.environment = environment
        self.read_only = read_only
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self.retry = retry or RetryPolicy()
        self.limit = limit or AdaptiveLimit()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.stats = TransportStats()

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | list | None = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        accept: tuple[int, ...] = (),
        attempts: Attempts | None = None,
    ) -> httpx.Response:
        """Send one request with every rule above; returns a 2xx response or one whose status is
        in `accept`. `attempts`, when given, is filled with what this call went through."""
        attempts = attempts if attempts is not None else Attempts()
        method = method.upper()
        url = self.url(path)
        if self.read_only and method != "GET":
            raise ReadOnlyViolation(
                self.environment,
                method,
                url,
                "this client is read-only (verification never writes); the request was not sent",
            )
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        failures = 0
        throttles = 0
        throttle_wait = 0.0
        refreshed = False
        while True:
            token = await self.tokens.token(force_refresh=False)
            send_headers = {
                "Accept": "application/json",
                "OData-Version": "4.0",
                "OData-MaxVersion": "4.0",
                **(headers or {}),
                "Authorization": f"Bearer {token}",
            }
            await self.limit.acquire()
            sent = time.monotonic()
            try:
                self.stats.requests += 1
                response = await self.client.request(method, url, params=params, content=content, headers=send_headers)
            except httpx.TransportError as exc:
                failure = exc
                response = None
            finally:
                attempts.answered_in = time.monotonic() - sent
                await self.limit.release()

            if response is None:
                failures += 1
                if _is_unreachable(failure):  # nothing was sent, so even a create may be tried again
                    if failures >= min(3, self.retry.attempts):
                        raise ConnectionFailed(
                            self.environment, method, url, _unreachable_message(failure, self.base_url)
                        ) from None
                    await self._backoff(failures, attempts)
                    continue
                if not idempotent:
                    raise OutcomeUnknown(
                        self.environment,
                        method,
                        url,
                        f"the connection failed before the answer arrived ({type(failure).__name__}); the write may or may not "
                        "have been applied — read the record before sending it again",
                    ) from None
                if failures >= self.retry.attempts:
                    raise ServiceUnavailable(
                        self.environment,
                        method,
                        url,
                        f"connection failed {failures} times ({type(failure).__name__}: {failure}); check the network and the service health, then re-run — completed work is kept",
                    ) from None
                await self._backoff(failures, attempts)
                continue

            status = response.status_code
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            if status == 429:
                attempts.throttled_at.append(time.monotonic())
                self.stats.throttled += 1
                await self.limit.throttled()
                throttles += 1
                # Retry-After: 0 (or missing) must not become a tight loop that burns the budget
                wait = max(_retry_after(response), min(5.0, 0.05 * 2 ** (throttles - 1)))
                throttle_wait += wait
                if throttle_wait > self.retry.max_throttle_wait:
                    raise ServiceUnavailable(
                        self.environment,
                        method,
                        url,
                        f"throttled for more than {self.retry.max_throttle_wait:.0f} s in total; the service-protection limits are exhausted — add application users to the pool or run later",
                        status=429,
                    )
                self.stats.waited_seconds += wait
                attempts.waited += wait
                await self.sleep(wait + self.rng.uniform(0, min(1.0, wait * 0.1)))
                continue
            if status == 401 and not refreshed:
                refreshed = True
                self.stats.token_refreshes += 1
                await self.tokens.token(force_refresh=True)
                continue
            if status >= 500 and status in self.retry.retry_statuses:
                failures += 1
                if not idempotent:
                    code, text = _error_text(response)
                    raise OutcomeUnknown(
                        self.environment,
                        method,
                        url,
                        f"the service answered {status} ({text}); the write may or may not have been applied — read the record before sending it again",
                        status=status,
                        code=code,
                    )
                if failures < self.retry.attempts:
                    await self._backoff(failures, attempts)
                    continue
            if 200 <= status < 300 or status in accept:
                hint = response.headers.get("x-ms-dop-hint")
                await self.limit.succeeded(int(hint) if hint and hint.isdigit() else None)
                return response
            raise self._error(method, url, response)

    async def _backoff(self, failures: int, attempts: Attempts) -> None:
        self.stats.retried += 1
        ceiling = min(self.retry.max_delay, self.retry.base_delay * (2 ** (failures - 1)))
        delay = self.rng.uniform(0, ceiling)
        self.stats.waited_seconds += delay
        attempts.waited += delay
        await self.sleep(delay)

    def _error(self, method: str, url: str, response: httpx.Response) -> ServiceError:
        status = response.status_code
        code, text = _error_text(response)
        env = self.environment
        if status == 401:
            return AuthenticationFailed(
                env,
                method,
                url,
                f"the service refused the sign-in twice (401). Run `cutover login {env}` and check the profile's tenant and client id",
                status=status,
                code=code,
            )
        if status == 403:
            return PermissionDenied(
                env,
                method,
                url,
                f"permission denied (403{', ' + code if code else ''}): {text}. Give the application user a security role with this privilege in {env}",
                status=status,
                code=code,
            )
        if status == 404:
            return NotFound(
                env, method, url, f"not found (404{', ' + code if code else ''}): {text}", status=status, code=code
            )
        if 400 <= status < 500:
            return BadRequest(
                env,
                method,
                url,
                f"the service rejected the request ({status}{', ' + code if code else ''}): {text}",
                status=status,
                code=code,
            )
        return ServiceUnavailable(
            env,
            method,
            url,
            f"the service failed ({status}{', ' + code if code else ''}) after {self.retry.attempts} attempts: {text}; re-run later — completed work is kept",
            status=status,
            code=code,
        )


def _retry_after(response: httpx.Response) -> float:
    text = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(text))
    except ValueError:
        return 1.0


def _is_unreachable(exc: Exception) -> bool:
    """The connection was never made: the request cannot have reached the service."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def _unreachable_message(exc: Exception, base_url: str) -> str:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS handshake with {base_url} failed ({text}); check the URL, the system clock and any TLS-inspecting proxy"
    return f"cannot reach {base_url} ({text or type(exc).__name__}); check the profile's URL, DNS and VPN"


__all__ = [
    "AdaptiveLimit",
    "AuthenticationFailed",
    "BadRequest",
    "ConnectionFailed",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ReadOnlyViolation",
    "RetryPolicy",
    "ServiceError",
    "ServiceUnavailable",
    "Transport",
    "TransportStats",
]
