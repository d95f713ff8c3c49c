"""OData reads page by page: the one paging path of both clients (Dataverse and F&O).

The protocol (OData 4.0 Part 1 §11.2.6.7 "Server-driven paging", §8.2.8.3 ``Prefer:
odata.maxpagesize``; Dataverse and F&O both follow it):

- The first request carries the query options (``$select $filter $orderby $top $count`` and
  F&O's ``cross-company=true``); a client that wants smaller pages says ``Prefer:
  odata.maxpagesize=N`` and repeats that header on every page. Each service has its own page
  limit (Dataverse 5,000, F&O 10,000): a larger size is refused before anything is sent.
- An answer is a JSON object whose ``value`` is the page's rows; ``@odata.nextLink``, when
  present, is the URL of the next page, to be followed exactly as given (it carries the
  server's skip token; a client never computes ``$skip``). A relative link is resolved
  against the URL of the page that carried it (RFC 3986 §5.2).
- Rows are parsed with exact decimals (:func:`cutover.odata.loads`): money never passes
  through a binary float.

The rules this module adds, because the bearer token goes with every page:

- Same service: a nextLink is followed only if it stays on the scheme and host the transport
  was built for and below its service root path, with no ``.``/``..`` segment that could
  climb out of it. Otherwise the read stops, naming the link's host; the token is never sent
  anywhere else.
- No endless paging: a nextLink already followed in this read (the same page again, or a
  cycle of pages) stops the read instead of looping forever.
- Query text is built in one place (:func:`query_options`, :func:`query_string`): names and
  values through :mod:`cutover.odata`, then percent-encoded with OData's own punctuation
  (``$ ( ) ' , = :``) kept readable in logs.

An answer that is not what the protocol promises (not JSON, no ``value`` list, a bad or
foreign nextLink) raises the client's own :class:`~cutover.transport.ServiceError` subclass
(``error=``), whose message says what to check (``fix=``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any
from urllib.parse import quote as _urlquote
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from . import odata
from .transport import ServiceError, Transport

__all__ = ["get_json", "next_url", "page_size_header", "pages", "query_options", "query_string", "read_json"]

_QUERY_SAFE = "$,()'=:*/-._~@"  # kept readable in the URL; everything else is percent-encoded


# --- query text ----------------------------------------------------------------------------------


def query_options(
    *,
    select: Iterable[str] | str | None = None,
    filter: str | None = None,
    orderby: Sequence[str] | str | None = None,
    top: int | None = None,
    count: bool = False,
) -> list[tuple[str, str]]:
    """The system query options, in a fixed order, each name and value checked.

    `filter` is OData text: build it with :mod:`cutover.odata` so values are quoted. `top` must
    be a non-negative int."""
    params: list[tuple[str, str]] = []
    if select:
        params.append(("$select", odata.select(select)))
    if filter:
        params.append(("$filter", filter))
    if orderby:
        params.append(("$orderby", odata.orderby(*([orderby] if isinstance(orderby, str) else orderby))))
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise ValueError(f"top must be a non-negative integer, got {top!r}")
        params.append(("$top", str(top)))
    if count:
        params.append(("$count", "true"))
    return params


def query_string(params: Iterable[tuple[str, str]]) -> str:
    """``name=value&…``, percent-encoded (OData punctuation kept readable)."""
    return "&".join(f"{_urlquote(k, safe='$-')}={_urlquote(v, safe=_QUERY_SAFE)}" for k, v in params)


def page_size_header(page_size: int | None, maximum: int, service: str) -> dict[str, str] | None:
    """``Prefer: odata.maxpagesize=N`` for 1 <= N <= `maximum` (the service's page limit); None for
    the service's default. Anything else is refused before a request is sent."""
    if page_size is None:
        return None
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= maximum:
        raise ValueError(f"page_size must be between 1 and {maximum:,} ({service}'s page limit), got {page_size!r}")
    return {"Prefer": f"odata.maxpagesize={page_size}"}


# --- answers -------------------------------------------------------------------------------------


def read_json(
    transport: Transport,
    method: str,
    response: httpx.Response,
    *,
    error: type[ServiceError],
    fix: str,
    require: tuple[str, ...] = (),
) -> Any:
    """The JSON body of a 2xx answer (exact decimals), or `error` saying it is not JSON / lacks `require`."""
    url = str(response.request.url)
    try:
        body = odata.loads(response.content)
    except ValueError as exc:
        raise error(transport.environment, method, url, f"the answer is not JSON ({exc}); {fix}") from None
    missing = [k for k in require if not isinstance(body, dict) or k not in body]
    if missing:
        raise error(
            transport.environment,
            method,
            url,
            f"the answer lacks {', '.join(missing)}; this does not look like an OData service — {fix}",
        )
    return body


async def get_json(
    transport: Transport,
    path: str,
    *,
    error: type[ServiceError],
    fix: str,
    params: dict | list | None = None,
    headers: dict[str, str] | None = None,
    require: tuple[str, ...] = (),
) -> Any:
    """GET `path` and return its JSON body (see :func:`read_json`)."""
    response = await transport.request("GET", path, params=params, headers=headers)
    return read_json(transport, "GET", response, error=error, fix=fix, require=require)


def next_url(transport: Transport, current: str, link: object, *, error: type[ServiceError]) -> str:
    """The nextLink as an absolute URL, refused (`error`) unless it stays on the transport's
    own service: same scheme and host, below the service root path, no dot segments."""
    if not isinstance(link, str) or not link:
        raise error(
            transport.environment,
            "GET",
            current,
            f"the service sent an unusable @odata.nextLink ({link!r}); the read stopped — report this to the environment's administrator",
        )
    url = urljoin(current, link)
    mine, theirs = urlsplit(transport.base_url), urlsplit(url)
    segments = unquote(theirs.path).split("/")
    if (
        (theirs.scheme.lower(), theirs.netloc.lower()) != (mine.scheme.lower(), mine.netloc.lower())
        or not theirs.path.startswith(mine.path)
        or "." in segments
        or ".." in segments
    ):
        raise error(
            transport.environment,
            "GET",
            current,
            f"the service's @odata.nextLink points outside {transport.base_url} ({theirs.scheme}://{theirs.netloc}{theirs.path}); "
            "the sign-in token is not sent there and the read stopped — check the profile's URL (it must be the environment's own address)",
        )
    return url


async def pages(
    transport: Transport,
    path: str,
    params: Iterable[tuple[str, str]] = (),
    *,
    headers: dict[str, str] | None = None,
    error: type[ServiceError],
    fix: str,
) -> AsyncIterator[list[dict]]:
    """Yield the rows of each page of `path` (an entity set, relative to the service root) with
    query options `params`, following ``@odata.nextLink`` to the end under the rules above.

    Only the page in hand is held: memory stays flat however many rows the set has."""
    query = query_string(params)
    url = transport.url(path + (f"?{query}" if query else ""))
    followed = {url}
    while True:
        body = await get_json(transport, url, headers=headers, error=error, fix=fix)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise error(
                transport.environment,
                "GET",
                url,
                "the answer is not an OData collection (no 'value' list); check the entity set name",
            )
        link = body.get("@odata.nextLink")
        yield body["value"]
        if link is None:
            return
        url = next_url(transport, url, link, error=error)
        if url in followed:
            raise error(
                transport.environment,
                "GET",
                url,
                "the service sent an @odata.nextLink this read already followed; the read stopped to avoid an endless loop",
            )
        followed.add(url)
