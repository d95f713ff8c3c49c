"""Finance and Operations OData reads (`{env}/data/`): paged, cross-company, partitioned.

Rules this client follows (DESIGN.md, "Domain facts", Finance and Operations):

- F&O pages on the server: at most 10,000 rows a page, the next page behind
  ``@odata.nextLink``. The client asks for smaller pages with ``Prefer: odata.maxpagesize=N``
  when told to, follows every nextLink to the end, and yields each page as it arrives;
  it never holds more than the page in hand (memory stays flat on a million rows).
- Rows are parsed with exact decimals (:func:`cutover.odata.loads`): money never passes
  through a binary float.
- A read sees only the caller's default company unless ``cross-company=true``; this client
  reads cross-company by default and narrows with ``dataAreaId eq 'usmf'`` (see
  :func:`company_partitions`), so nothing depends on which company the identity defaults to.
- Filters are built with :mod:`cutover.odata` (quoting); F&O enum literals are written
  ``Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'`` (:func:`enum`).
- Every request goes through the shared :class:`~cutover.transport.Transport`: 429 +
  ``Retry-After`` is waited out, never given up on, 5xx on a GET is retried, a read-only
  transport refuses anything but GET before sending it. This client only ever sends GETs;
  it has no method that writes (F&O changes only through dual-write during the cutover).
- Paging is :mod:`cutover.paging`, the same path as Dataverse's: a nextLink is followed only
  if it points below the transport's own service root, so a malformed or hostile answer can
  never send the bearer token elsewhere, and never twice, so a looping answer cannot keep the
  read going forever.

Large entities are read faster with :meth:`FnoClient.partitioned`: disjoint filters (legal
entity, key range or date range) read in parallel, their pages handed to the caller through a
bounded queue as they arrive. A real F&O environment runs requests on a farm of servers, so
parallel requests overlap their server execution time; the service-protection limits (52
concurrent, 6000 requests / 1200 s execution per 5 minutes per user) still apply, and the
transport's adaptive limit keeps the run under them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import odata, paging
from .transport import ServiceError, Transport

__all__ = [
    "ENUM_NAMESPACE",
    "FNO_MAX_PAGE",
    "FnoClient",
    "FnoResponseError",
    "Partition",
    "company_partitions",
    "date_partitions",
    "enum",
    "key_range_partitions",
]

FNO_MAX_PAGE = 10_000  # F&O's server-driven page size; a larger maxpagesize is pointless
ENUM_NAMESPACE = "Microsoft.Dynamics.DataEntities"
DEFAULT_CONCURRENCY = 8
_FIX = "check that the profile's F&O URL ends in /data/"


class FnoResponseError(ServiceError):
    """The service answered 200 with something that is not an OData collection page."""


def enum(type_name: str, member: str) -> odata.Enum:
    """An F&O enum value for filters: ``odata.filter_eq("TransStatus", enum("ProjTransStatus", "Invoiced"))``
    → ``TransStatus eq Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'``. A bare type
    name gets F&O's namespace; a qualified one is kept. ``str()`` gives the literal."""
    qualified = type_name if "." in type_name else f"{ENUM_NAMESPACE}.{type_name}"
    odata.enum_literal(qualified, member)  # validates both parts now, not at query time
    return odata.Enum(qualified, member)


@dataclass(frozen=True)
class Partition:
    """One slice of an entity: an OData filter (None = everything) and a label for people."""

    filter: str | None
    label: str = ""


# --- partition planning ---------------------------------------------------------------------


def company_partitions(companies: Iterable[str], field: str = "dataAreaId") -> list[Partition]:
    """One partition per legal entity: ``dataAreaId eq 'usmf'``. Read them cross-company.

    The partitions cover the entity only if `companies` lists every legal entity that has rows
    (F&O has no cheap "distinct dataAreaId"; the caller knows its companies)."""
    seen: list[str] = []
    for company in companies:
        code = company.lower()  # dataAreaId is lower case in F&O (USMF -> usmf)
        if code not in seen:
            seen.append(code)
    if not seen:
        raise ValueError("company_partitions() needs at least one legal entity")
    return [Partition(odata.filter_eq(field, code), code) for code in seen]


def key_range_partitions(field: str, lo: int, hi: int, parts: int, *, open_ends: bool = True) -> list[Partition]:
    """Split an integer key range [lo, hi] into up to `parts` disjoint, contiguous ranges.

    Middle partitions are ``field ge a and field lt b``. With `open_ends` (the default) the
    first has no lower bound and the last no upper bound, so together they cover every row
    even if lo / hi were probed a moment ago and rows appeared outside them since. Without it
    they cover exactly [lo, hi]. Never more partitions than keys in the range."""
    for name, value in (("lo", lo), ("hi", hi)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(
                f"key_range_partitions needs integer keys; {name} is {type(value).__name__} {value!r} — use company_partitions or date_partitions"
            )
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if hi < lo:
        raise ValueError(f"empty key range: hi ({hi}) is below lo ({lo})")
    odata.field_name(field)
    span = hi - lo + 1
    parts = min(parts, span)
    bounds = [lo + span * i // parts for i in range(parts + 1)]  # bounds[0] = lo, bounds[-1] = hi + 1
    out: list[Partition] = []
    for i in range(parts):
        low = None if (open_ends and i == 0) else odata.compare(field, "ge", bounds[i])
        if i == parts - 1:
            high = None if open_ends else odata.compare(field, "le", hi)
        else:
            high = odata.compare(field, "lt", bounds[i + 1])
        clauses = [c for c in (low, high) if c]
        out.append(Partition(odata.and_(*clauses) if clauses else None, f"{field} [{bounds[i]}, {bounds[i + 1]})"))
    return out


def date_partitions(
    field: str,
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    parts: int,
    *,
    edm_date: bool = False,
    open_ends: bool = False,
) -> list[Partition]:
    """Split [start, end) into up to `parts` disjoint date ranges ``field ge a and field lt b``.

    F&O exposes transaction dates as ``Edm.DateTimeOffset``, so dates are written as UTC
    midnight (``2026-01-01T00:00:00Z``) unless `edm_date` (an ``Edm.Date`` property).
    `start` / `end` that are dates split on whole days, datetimes on whole seconds. With
    `open_ends` the first range has no lower and the last no upper bound (covering the set)."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        raise TypeError("start and end must both be dates or both be datetimes")
    if not start < end:
        raise ValueError(f"empty date range: end ({end}) must be after start ({start})")
    odata.field_name(field)
    if isinstance(start, dt.datetime):
        total = int((end - start).total_seconds())
        step = dt.timedelta(seconds=1)
    else:
        total = (end - start).days
        step = dt.timedelta(days=1)
    parts = max(1, min(parts, total))
    bounds = [start + step * (total * i // parts) for i in range(parts)] + [end]

    def literal(value: dt.date | dt.datetime) -> Any:
        if edm_date or isinstance(value, dt.datetime):
            return value
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)

    out: list[Partition] = []
    for i in range(parts):
        low = None if (open_ends and i == 0) else odata.compare(field, "ge", literal(bounds[i]))
        high = None if (open_ends and i == parts - 1) else odata.compare(field, "lt", literal(bounds[i + 1]))
        clauses = [c for c in (low, high) if c]
        out.append(
            Partition(
                odata.and_(*clauses) if clauses else None,
                f"{field} [{bounds[i].isoformat()}, {bounds[i + 1].isoformat()})",
            )
        )
    return out


# --- the client ------------------------------------------------------------------------------------


_DONE = object()


class FnoClient:
    """Read-only async client for the F&O OData service root (``{env}/data/``).

    Build it on a :class:`Transport` whose base URL is that root; for verification the
    transport is ``read_only=True``. The client itself has no method that writes."""

    def __init__(self, transport: Transport):
        self.transport = transport

    @property
    def read_only(self) -> bool:
        return self.transport.read_only

    # query building

    def _query(
        self,
        *,
        select: Iterable[str] | str | None,
        filter: str | None,
        cross_company: bool,
        orderby: Sequence[str] | str | None,
        top: int | None,
        count: bool = False,
    ) -> list[tuple[str, str]]:
        params = [("cross-company", "true")] if cross_company else []
        return params + paging.query_options(select=select, filter=filter, orderby=orderby, top=top, count=count)

    # reads

    async def pages(
        self,
        entity: str,
        *,
        select: Iterable[str] | str | None = None,
        filter: str | None = None,
        cross_company: bool = True,
        page_size: int | None = None,
        orderby: Sequence[str] | str | None = None,
        top: int | None = None,
    ) -> AsyncIterator[list[dict]]:
        """Yield the server's pages of `entity` in order, following ``@odata.nextLink`` to the end.

        `page_size` (1..10,000) asks for smaller pages with ``Prefer: odata.maxpagesize``; by
        default F&O decides (10,000). Each page is a list of row dicts with Decimal money."""
        odata.name_segment(entity)
        headers = paging.page_size_header(page_size, FNO_MAX_PAGE, "F&O")
        params = self._query(select=select, filter=filter, cross_company=cross_company, orderby=orderby, top=top)
        async for rows in paging.pages(
            self.transport, entity, params, headers=headers, error=FnoResponseError, fix=_FIX
        ):
            yield rows

    async def rows(
        self,
        entity: str,
        *,
        select: Iterable[str] | str | None = None,
        filter: str | None = None,
        cross_company: bool = True,
        page_size: int | None = None,
        orderby: Sequence[str] | str | None = None,
        top: int | None = None,
    ) -> AsyncIterator[dict]:
        """Yield the rows of :meth:`pages`, one at a time."""
        async for page in self.pages(
            entity,
            select=select,
            filter=filter,
            cross_company=cross_company,
            page_size=page_size,
            orderby=orderby,
            top=top,
        ):
            for row in page:
                yield row

    async def count(self, entity: str, filter: str | None = None, cross_company: bool = True) -> int:
        """Number of rows matching `filter`, asked as ``$count=true&$top=0`` (no rows are sent)."""
        odata.name_segment(entity)
        query = paging.query_string(
            self._query(select=None, filter=filter, cross_company=cross_company, orderby=None, top=0, count=True)
        )
        body = await paging.get_json(self.transport, f"{entity}?{query}", error=FnoResponseError, fix=_FIX)
        value = body.get("@odata.count") if isinstance(body, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise FnoResponseError(
                self.transport.environment,
                "GET",
                self.transport.url(entity),
                f"the answer carries no @odata.count (got {value!r}); this environment may not support $count on {entity}",
            )
        return value

    async def first(
        self,
        entity: str,
        field: str,
        *,
        descending: bool = False,
        filter: str | None = None,
        cross_company: bool = True,
    ) -> Any:
        """The smallest (or largest) value of `field`, via ``$orderby=field&$top=1``; None if no rows."""
        stream = self.pages(
            entity,
            select=[field],
            filter=filter,
            cross_company=cross_company,
            orderby=f"{field} {'desc' if descending else 'asc'}",
            top=1,
        )
        async with contextlib.aclosing(stream):
            async for page in stream:
                return page[0][field] if page else None
        return None

    async def plan_partitions(
        self,
        entity: str,
        key_field: str,
        parts: int,
        *,
        filter: str | None = None,
        cross_company: bool = True,
    ) -> list[Partition]:
        """Key-range partitions of `entity` by integer `key_field`: probes lo and hi with two
        ``$orderby=…&$top=1`` reads, then :func:`key_range_partitions` (open ends: every row
        is in exactly one partition). An empty entity gives one partition with no filter."""
        lo = await self.first(entity, key_field, filter=filter, cross_company=cross_company)
        hi = await self.first(entity, key_field, descending=True, filter=filter, cross_company=cross_company)
        if lo is None or hi is None:
            return [Partition(None, "all")]
        return key_range_partitions(key_field, lo, hi, parts)

    async def partitioned(
        self,
        entity: str,
        partitions: Sequence[Partition],
        *,
        select: Iterable[str] | str | None = None,
        filter: str | None = None,
        cross_company: bool = True,
        page_size: int | None = None,
        concurrency: int | None = None,
        queue_pages: int | None = None,
        map_page: Callable[[list[dict]], Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Read disjoint `partitions` of `entity` in parallel; yield pages as they arrive.

        - Up to `concurrency` partitions (default: all, at most 8) are read at once, each as
          its own nextLink stream; `filter` is ANDed to every partition's filter. Requests in
          flight are further bounded by the transport's adaptive limit (which backs off on 429).
        - Pages pass through a queue of `queue_pages` (default `concurrency`) pages: a reader
          whose page finds the queue full waits, so at most about 2 × concurrency + 1 pages
          are in memory however slow the caller is.
        - `map_page`, if given, turns each page into what is queued and yielded instead (e.g.
          a compact polars frame): it runs in the reader as soon as the page is parsed, so the
          queue holds mapped pages, not row dicts. An exception it raises fails the read like
          any other (raised to the caller, the other readers cancelled).
        - Each row comes exactly once if the partitions are disjoint and cover the set (the
          planners above build them so). Page order across partitions is not defined.
        - The first failure of any partition is raised to the caller and the other readers
          are cancelled. If the caller stops early (``break``), the readers are cancelled when
          the iterator is closed: at once with ``contextlib.aclosing(...)``, else when the
          event loop finalises the abandoned generator.
        """
        partitions = list(partitions)
        if not partitions:
            return
        workers = concurrency or min(len(partitions), DEFAULT_CONCURRENCY)
        if workers < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        workers = min(workers, len(partitions))
        queue: asyncio.Queue = asyncio.Queue(maxsize=queue_pages or workers)
        todo = iter(partitions)
        fields = None if not select else [select] if isinstance(select, str) else list(select)
        if fields:
            odata.select(fields)  # validate once, before any reader starts

        async def reader() -> None:
            try:
                for part in todo:  # shared iterator: each partition is taken by one reader
                    clause = odata.and_(filter, part.filter) if (filter or part.filter) else None
                    async for page in self.pages(
                        entity, select=fields, filter=clause, cross_company=cross_company, page_size=page_size
                    ):
                        await queue.put(page if map_page is None else map_page(page))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the caller, who cancels the others
                await queue.put(_Failure(exc))
                return
            await queue.put(_DONE)

        tasks = [asyncio.create_task(reader(), name=f"cutover.fno.partitioned:{entity}:{i}") for i in range(workers)]
        finished = 0
        try:
            while finished < workers:
                item = await queue.get()
                if item is _DONE:
                    finished += 1
                elif isinstance(item, _Failure):
                    raise item.exc
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class _Failure:
    exc: BaseException
