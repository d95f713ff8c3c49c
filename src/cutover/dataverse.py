"""Async Dataverse Web API v9.2 client: paged reads, upserts, bulk writes, actions, $metadata.

Built on :class:`cutover.transport.Transport` (throttling, retries, read-only, redaction), one
transport per application user. The rules it follows (DESIGN.md "Domain facts"):

- Paging: ``Prefer: odata.maxpagesize=N`` (at most 5000) and ``@odata.nextLink``; never
  ``$skip``. Paging is :mod:`cutover.paging`, the same path as F&O's: a nextLink must stay on
  the service root the client was built for (a token is never sent anywhere else) and is
  never followed twice.
- Money is exact: request bodies are written with :func:`cutover.odata.dumps` (Decimal → exact
  JSON number, a float anywhere refused before anything is sent) and answers read with
  :func:`cutover.odata.loads` (numbers with a fraction → Decimal).
- Upsert: ``PATCH set(id)``; ``If-None-Match: *`` = create only, ``If-Match: *`` = update only.
  Ids are deterministic (:func:`cutover.domain.deterministic_id`), so an upsert may be sent
  again safely: the transport retries it on 5xx and dropped connections (``idempotent=True``).
  A create-only upsert is not idempotent (resent, it would meet its own record): a lost answer
  is ``OutcomeUnknown``.
- Bulk writes (``UpsertMultiple`` / ``CreateMultiple``, bisection, ``$batch`` fallback, per-
  record outcomes across the pool) are :class:`cutover.bulk.BulkJob`; this client builds the
  job (:meth:`DataverseClient.bulk_job`) and remembers which sets lack the bulk message, from
  ``$metadata`` (:mod:`cutover.csdl`) when it was read or from the job's own discovery.
- Actions: bound ``set(key)/Microsoft.Dynamics.CRM.name``, bound to a set, or unbound; never
  retried (not idempotent). Functions: ``name(p=@p)?@p=<literal>``.
- Keys and names are URL segments built by :mod:`cutover.odata` (a GUID, or an alternate key
  with quoted values; a name is one identifier), so no argument can reshape a URL.
- A 2xx answer that is not the Web API's JSON (a proxy page, a wrong URL) is a
  :class:`DataverseResponseError` saying which URL to check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from . import odata, paging
from .bulk import DEFAULT_CHUNK, MAX_BULK_TARGETS, BulkJob, BulkResult, ChunkCallback, ProgressCallback
from .csdl import DATAVERSE_NAMESPACE, Metadata, ParseError
from .transport import NotFound, ReadOnlyViolation, ServiceError, Transport

__all__ = ["MAX_PAGE_SIZE", "NAMESPACE", "DataverseClient", "DataverseResponseError"]

NAMESPACE = DATAVERSE_NAMESPACE
MAX_PAGE_SIZE = 5000
OBJECT_DOES_NOT_EXIST = "0x80040217"
_JSON = {"Content-Type": "application/json; charset=utf-8"}
_FIX = (
    "check that the profile's Dataverse URL is the organization URL (https://<org>.crm.dynamics.com) "
    "and that no proxy answers in its place"
)


class DataverseResponseError(ServiceError):
    """A 2xx answer that is not the JSON the Web API gives (a proxy page, a wrong URL)."""


def _json(t: Transport, method: str, response: Any, *, require: tuple[str, ...] = ()) -> Any:
    return paging.read_json(t, method, response, error=DataverseResponseError, fix=_FIX, require=require)


class DataverseClient:
    """The Dataverse Web API for one environment, through one transport per application user."""

    def __init__(self, transports: Transport | Sequence[Transport], *, chunk: int = DEFAULT_CHUNK):
        pool = [transports] if isinstance(transports, Transport) else list(transports)
        if not pool:
            raise ValueError("DataverseClient needs at least one Transport")
        if len({t.read_only for t in pool}) > 1:
            raise ValueError("a pool mixes read-only and writing transports; build one client of each")
        if len({t.base_url for t in pool}) > 1:
            raise ValueError("all transports of a pool must point at the same Dataverse service root")
        if not 1 <= chunk <= MAX_BULK_TARGETS:
            raise ValueError(f"chunk must be between 1 and {MAX_BULK_TARGETS}")
        self.pool = pool
        self.chunk = chunk
        self._next = 0
        self._metadata: Metadata | None = None
        self._no_bulk: set[tuple[str, str]] = set()

    # --- basics ---

    @property
    def read_only(self) -> bool:
        return self.pool[0].read_only

    @property
    def environment(self) -> str:
        return self.pool[0].environment

    @property
    def base_url(self) -> str:
        return self.pool[0].base_url

    async def aclose(self) -> None:
        for t in self.pool:
            await t.aclose()

    async def __aenter__(self) -> DataverseClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _transport(self) -> Transport:
        t = self.pool[self._next % len(self.pool)]
        self._next += 1
        return t

    def _refuse_writes(self, method: str, path: str) -> None:
        if self.read_only:
            raise ReadOnlyViolation(
                self.environment,
                method,
                self.base_url + path,
                "this client is read-only (verification never writes); the request was not sent",
            )

    # --- reads ---

    async def query(
        self,
        entity_set: str,
        *,
        select: Sequence[str] | str | None = None,
        filter: str | None = None,
        orderby: Sequence[str] | str | None = None,
        top: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[list[dict]]:
        """Yield the rows of `entity_set` page by page (``Prefer: odata.maxpagesize``, ``@odata.nextLink``).

        `filter` is OData text; build it with :mod:`cutover.odata` so values are quoted. Dataverse
        ignores ``$top`` when ``odata.maxpagesize`` is also sent (documented), so a query with
        `top` sends no page size (the service pages ``$top`` rows itself) and is cut at `top`
        rows here as well.
        """
        headers = paging.page_size_header(page_size, MAX_PAGE_SIZE, "Dataverse")
        params = paging.query_options(select=select, filter=filter, orderby=orderby, top=top)
        if top is not None:
            headers = {}
            remaining = top
            path = odata.name_segment(entity_set)
            async for page in paging.pages(
                self._transport(), path, params, headers=headers, error=DataverseResponseError, fix=_FIX
            ):
                if remaining <= 0:
                    break
                yield page[:remaining]
                remaining -= len(page)
            return
        path = odata.name_segment(entity_set)
        async for page in paging.pages(
            self._transport(), path, params, headers=headers, error=DataverseResponseError, fix=_FIX
        ):
            yield page

    async def query_all(self, entity_set: str, **options) -> list[dict]:
        """Every row of :meth:`query` in one list (for small sets; stream large ones)."""
        rows: list[dict] = []
        async for page in self.query(entity_set, **options):
            rows.extend(page)
        return rows

    async def get(self, entity_set: str, key: object, select: Sequence[str] | str | None = None) -> dict | None:
        """One record by key, or None when it does not exist (404 "Does Not Exist")."""
        path = odata.name_segment(entity_set) + odata.key_segment(key)
        params = {"$select": odata.select(select)} if select else None
        t = self._transport()
        r = await t.request("GET", path, params=params, accept=(404,))
        if r.status_code == 404:
            code, text = odata.error_of(r.content, r.status_code, r.reason_phrase)
            if code not in (None, OBJECT_DOES_NOT_EXIST):  # e.g. an unknown entity set: not "no such record"
                raise NotFound(
                    self.environment,
                    "GET",
                    self.base_url + path,
                    f"not found (404, {code}): {text}",
                    status=404,
                    code=code,
                )
            return None
        return _json(t, "GET", r)

    # --- single writes ---

    async def upsert(
        self,
        entity_set: str,
        key: object,
        record: Mapping[str, Any],
        *,
        create_only: bool = False,
        update_only: bool = False,
    ) -> str:
        """``PATCH set(key)``: create or update; create_only → ``If-None-Match: *`` (412 if present),
        update_only → ``If-Match: *`` (404 if missing). Plain upserts are retried on 5xx and lost
        answers; a create-only write whose answer is lost raises OutcomeUnknown instead."""
        if create_only and update_only:
            raise ValueError("create_only and update_only exclude each other")
        path = odata.name_segment(entity_set) + odata.key_segment(key)
        self._refuse_writes("PATCH", path)
        body = odata.dumps(dict(record))  # a float anywhere is refused here, before anything is sent
        headers = dict(_JSON)
        if create_only:
            headers["If-None-Match"] = "*"
        if update_only:
            headers["If-Match"] = "*"
        # A plain upsert may be resent safely; a create-only one may not: resent after a lost
        # answer it would meet our own record and answer 412. Lost answers -> OutcomeUnknown.
        await self._transport().request("PATCH", path, content=body, headers=headers, idempotent=not create_only)
        return odata.guid(key) if not isinstance(key, Mapping) else path

    async def delete(self, entity_set: str, key: object) -> bool:
        """``DELETE set(key)``; False when the record was not there (404 "Does Not Exist"), so a
        repeated delete is harmless. Deletes are idempotent and retried like reads."""
        path = odata.name_segment(entity_set) + odata.key_segment(key)
        self._refuse_writes("DELETE", path)
        t = self._transport()
        r = await t.request("DELETE", path, accept=(404,))
        if r.status_code == 404:
            code, text = odata.error_of(r.content, r.status_code, r.reason_phrase)
            if code not in (None, OBJECT_DOES_NOT_EXIST):  # e.g. an unknown entity set: not "no such record"
                raise NotFound(
                    self.environment,
                    "DELETE",
                    self.base_url + path,
                    f"not found (404, {code}): {text}",
                    status=404,
                    code=code,
                )
            return False
        return True

    # --- actions and functions ---

    async def action(
        self, entity_set: str, key: object, name: str, body: Mapping[str, Any] | None = None
    ) -> dict | None:
        """Invoke a bound action ``set(key)/Microsoft.Dynamics.CRM.name``; returns its JSON answer or None."""
        path = f"{odata.name_segment(entity_set)}{odata.key_segment(key)}/{NAMESPACE}.{odata.name_segment(name)}"
        return await self._post_action(path, body)

    async def collection_action(self, entity_set: str, name: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """Invoke an action bound to the whole set, ``set/Microsoft.Dynamics.CRM.name``."""
        return await self._post_action(f"{odata.name_segment(entity_set)}/{NAMESPACE}.{odata.name_segment(name)}", body)

    async def unbound_action(self, name: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """Invoke an unbound action ``name``; returns its JSON answer or None."""
        return await self._post_action(odata.name_segment(name), body)

    async def _post_action(self, path: str, body: Mapping[str, Any] | None) -> dict | None:
        self._refuse_writes("POST", path)
        content = odata.dumps(dict(body or {}))
        t = self._transport()
        r = await t.request("POST", path, content=content, headers=dict(_JSON), idempotent=False)
        return _json(t, "POST", r) if r.content.strip() else None

    async def function(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call a function, e.g. ``function("WhoAmI")``; parameters go as aliases ``name(p=@p)?@p=<literal>``."""
        path = odata.name_segment(name)
        query = None
        if params:
            path += "(" + ",".join(f"{odata.field_name(k)}=@{k}" for k in params) + ")"
            query = {f"@{k}": odata.quote(v) for k, v in params.items()}
        t = self._transport()
        r = await t.request("GET", path, params=query)
        return _json(t, "GET", r)

    async def whoami(self) -> dict[str, str]:
        """``WhoAmI``: {"OrganizationId", "UserId", "BusinessUnitId"} (GUID strings)."""
        keys = ("OrganizationId", "UserId", "BusinessUnitId")
        t = self._transport()
        body = _json(t, "GET", await t.request("GET", "WhoAmI"), require=keys)
        return {k: str(body[k]) for k in keys}

    async def metadata(self, *, refresh: bool = False) -> Metadata:
        """The service's ``$metadata`` (CSDL), parsed; cached per client."""
        if self._metadata is None or refresh:
            r = await self._transport().request("GET", "$metadata", headers={"Accept": "application/xml"})
            try:
                self._metadata = Metadata.parse(r.content)
            except ParseError as exc:
                raise DataverseResponseError(
                    self.environment,
                    "GET",
                    self.base_url + "$metadata",
                    f"$metadata is not valid CSDL XML ({exc}); check the Dataverse URL of the profile",
                ) from None
        return self._metadata

    # --- bulk writes ---

    def bulk_job(
        self,
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        create: bool = False,
        key_field: str | None = None,
        chunk: int | None = None,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> BulkJob:
        """A :class:`~cutover.bulk.BulkJob` over this client's pool, not started: ``await job.run()``.
        It starts with ``$batch`` when the set is known to lack the bulk message."""
        message = "CreateMultiple" if create else "UpsertMultiple"
        md = self._metadata
        known_unsupported = (entity_set, message) in self._no_bulk or (
            md is not None and md.has_entity_set(entity_set) and not md.supports_bulk(entity_set, message)
        )
        return BulkJob(
            self.pool,
            entity_set,
            logical_name,
            records,
            create=create,
            key_field=key_field,
            chunk=chunk or self.chunk,
            use_batch=known_unsupported,
            on_progress=on_progress,
            on_chunk=on_chunk,
        )

    async def run_bulk(self, job: BulkJob) -> BulkResult:
        """Run `job` and remember what it learned (a set without the bulk message)."""
        try:
            return await job.run()
        finally:
            if job.learned_unsupported:
                self._no_bulk.add((job.entity_set, job.message))

    async def bulk_upsert(
        self,
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key_field: str | None = None,
        chunk: int | None = None,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> BulkResult:
        """Upsert `records` (each carrying its id in `key_field`, default ``<logical_name>id``) with
        UpsertMultiple in chunks across the pool, falling back to $batch; per-record outcomes."""
        job = self.bulk_job(
            entity_set,
            logical_name,
            records,
            key_field=key_field,
            chunk=chunk,
            on_progress=on_progress,
            on_chunk=on_chunk,
        )
        return await self.run_bulk(job)

    async def bulk_create(
        self,
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key_field: str | None = None,
        chunk: int | None = None,
        on_progress: ProgressCallback | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> BulkResult:
        """Create `records` with CreateMultiple (not idempotent: a lost answer is reported as
        outcome unknown, never resent); ids optional; per-record outcomes."""
        job = self.bulk_job(
            entity_set,
            logical_name,
            records,
            create=True,
            key_field=key_field,
            chunk=chunk,
            on_progress=on_progress,
            on_chunk=on_chunk,
        )
        return await self.run_bulk(job)
