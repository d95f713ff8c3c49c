"""The http client msal uses: httpx underneath, and identity routing to the simulator.

msal takes an ``http_client`` with the ``get``/``post`` interface of
``msal.oauth2cli.http.HttpClient``. :class:`IdentityHttpClient` implements it with a synchronous
``httpx.Client`` (msal calls it from worker threads), turns transport failures into
:class:`IdentityPlatformUnreachable` — a ``requests`` ``ConnectionError``, which msal's silent
path understands and answers with a cached token — and keeps the last OAuth error body it saw
on each thread, because msal wraps some of them in a ValueError without the server's words.

:class:`RoutedIdentityHttpClient` is the rehearsal variant: msal insists on an https authority
(``https://login.microsoftonline.com/<tenant>``), so this client sends exactly that host to the
simulator's ``/_sim/login/...`` stand-ins and refuses every other one
(:class:`IdentityRoutingError`), so a rehearsal never talks to the real identity platform.

Core code: nothing from ``cutover.sim``; any server text in an error goes through
:func:`cutover.redaction.redact`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import WrongEnvironment
from .redaction import redact

__all__ = [
    "AUTHORITY_HOST",
    "SIM_LOGIN_PATH",
    "IdentityHttpClient",
    "IdentityPlatformUnreachable",
    "IdentityResponse",
    "IdentityRoutingError",
    "RoutedIdentityHttpClient",
]

AUTHORITY_HOST = "login.microsoftonline.com"
SIM_LOGIN_PATH = "/_sim/login"


class IdentityRoutingError(WrongEnvironment):
    """A rehearsal sign-in tried to reach a host other than the identity platform's, which the
    routing client sends to the simulator: whatever answered at the profile's URL pointed msal
    somewhere else. Refused before anything (a secret, an assertion) is sent (exit 3)."""


try:  # msal's silent path falls back on a cached token when the refresh hits a transport error
    from requests.exceptions import ConnectionError as _TransportErrorBase  # msal depends on requests
except ImportError:  # pragma: no cover - msal always brings requests
    _TransportErrorBase = ConnectionError  # type: ignore[assignment,misc]


class IdentityPlatformUnreachable(_TransportErrorBase):  # type: ignore[misc,valid-type]
    """The identity platform (or the simulator standing in for it) could not be reached.
    Deliberately a ``requests`` ConnectionError, not a CutoverError: msal relies on that; the
    sign-in session turns it into a :class:`cutover.signin.SignInError`."""

    def __init__(self, url: str, detail: str, *, tls: bool = False):
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.detail = detail
        self.tls = tls


@dataclass
class IdentityResponse:
    """What msal reads of a response: ``status_code``, ``text``, ``headers``,
    ``raise_for_status()`` (msal.oauth2cli.http.Response)."""

    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"identity platform answered HTTP {self.status_code} for {self.url}",
                request=httpx.Request("GET", self.url or "https://invalid"),
                response=httpx.Response(self.status_code),
            )


class IdentityHttpClient:
    """msal's ``http_client`` (the ``get``/``post`` interface of msal.oauth2cli.http.HttpClient),
    implemented with a synchronous ``httpx.Client``. Transport failures become
    :class:`IdentityPlatformUnreachable`. The last OAuth error body seen on this thread is kept
    in :attr:`last_error` (msal wraps some of them in a ValueError without the server's words)."""

    def __init__(
        self, *, timeout: float = 30.0, verify: bool | str = True, transport: httpx.BaseTransport | None = None
    ):
        self._client = httpx.Client(timeout=timeout, verify=verify, transport=transport, follow_redirects=False)
        self._local = threading.local()

    @property
    def last_error(self) -> dict | None:
        return getattr(self._local, "error", None)

    def clear_last_error(self) -> None:
        self._local.error = None

    def _target(self, url: str) -> str:
        return url

    def describe(self) -> str:
        return f"https://{AUTHORITY_HOST}"

    def _send(self, method: str, url: str, params=None, data=None, headers=None) -> IdentityResponse:
        target = self._target(url)
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if isinstance(data, (str, bytes)):
            kwargs["content"] = data
        elif data is not None:
            # as requests would encode it: bytes (msal's client assertion) as text, None left out
            kwargs["data"] = {
                k: (v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in data.items() if v is not None
            }
        try:
            r = self._client.request(method, target, **kwargs)
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            tls = "CERTIFICATE_VERIFY_FAILED" in detail or "SSL" in detail.upper()
            raise IdentityPlatformUnreachable(target, f"{type(exc).__name__}: {redact(detail)}", tls=tls) from None
        response = IdentityResponse(r.status_code, r.text, dict(r.headers), str(r.request.url))
        if r.status_code >= 400:
            try:
                body = json.loads(response.text)
            except ValueError:
                body = {"error": f"http_{r.status_code}", "error_description": response.text[:500]}
            self._local.error = body if isinstance(body, dict) else {"error": f"http_{r.status_code}"}
        return response

    def post(self, url: str, params=None, data=None, headers=None, **kwargs) -> IdentityResponse:
        return self._send("POST", url, params=params, data=data, headers=headers)

    def get(self, url: str, params=None, headers=None, **kwargs) -> IdentityResponse:
        return self._send("GET", url, params=params, headers=headers)

    def close(self) -> None:
        self._client.close()


class RoutedIdentityHttpClient(IdentityHttpClient):
    """An :class:`IdentityHttpClient` for rehearsals: ``https://login.microsoftonline.com/<rest>``
    goes to ``<simulator_base_url>/_sim/login/<rest>``; any other host is refused, so a
    rehearsal never talks to the real identity platform."""

    def __init__(self, simulator_base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.simulator_base_url = simulator_base_url.rstrip("/")

    def describe(self) -> str:
        return f"{self.simulator_base_url}{SIM_LOGIN_PATH} (the simulator standing in for https://{AUTHORITY_HOST})"

    def _target(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or (parts.hostname or "").lower() != AUTHORITY_HOST:
            raise IdentityRoutingError(
                f"a rehearsal sign-in only talks to the simulator; refusing to send a request to {parts.scheme}://{parts.netloc}"
            )
        return self.simulator_base_url + SIM_LOGIN_PATH + parts.path + (f"?{parts.query}" if parts.query else "")
