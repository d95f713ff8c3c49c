"""Where a bearer token comes from: the one `TokenSource` contract the transport consumes.

The transport asks ``await source.token()`` before a request and ``token(force_refresh=True)``
after a 401. Sign-in (:mod:`cutover.auth`) implements it with msal; tests and tokens obtained
elsewhere use :class:`StaticToken`. ``describe()`` says where tokens come from (never a token
or secret); ``close()`` releases what the source holds.
"""

from __future__ import annotations

import abc


class TokenSource(abc.ABC):
    """Bearer tokens for one resource."""

    @abc.abstractmethod
    async def token(self, *, force_refresh: bool = False) -> str:
        """An access token; ``force_refresh`` skips any cached one (after a 401)."""

    def describe(self) -> str:
        return type(self).__name__

    def close(self) -> None:  # noqa: B027 - a no-op default, not an abstract method
        """Release connections or files; the default holds none."""


class StaticToken(TokenSource):
    """A fixed token (tests, and tokens obtained elsewhere)."""

    def __init__(self, value: str):
        self._value = value

    async def token(self, *, force_refresh: bool = False) -> str:
        return self._value

    def describe(self) -> str:
        return "a fixed token"
