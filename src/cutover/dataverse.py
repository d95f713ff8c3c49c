"""Async Dataverse Web API v9.2 client: paged reads, upserts, bulk writes, actions, $metadata.

Built on :class:`cutover.transport.Transport` (throttling, retries, read-only, redaction), one
transport per application user. The rules it follows (DESIGN.md "Domain facts"):

- Paging: ``Prefer: odata.maxpagesize=N`` (at most 5000) and ``@odata.nextLink``; never ``$skip``.
  A nextLink must stay on the service root the client was built for (a token is never sent
  anywhere else).
- Money is exact: request bodies are written with :func:`cutover.odata.dumps` (Decimal → exact
  JSON number) and answers read with :func:`cutover.odata.loads` (numbers with a fraction →
  Decimal).
- Upsert: ``PATCH set(id)``; ``If-None-Match: *`` = create only, ``If-Match: *`` = update only.
  Ids are deterministic (``uuid5(namespace, legacy_id)``), so an upsert may be sent again
  safely: the transport retries it on 5xx and dropped connections (``idempotent=True``).
- Bulk: ``POST set/Microsoft.Dynamics.CRM.UpsertMultiple`` (or ``CreateMultiple``) with
  ``{"Targets": [...]}``, each target carrying ``@odata.type``. The message is all-or-nothing,
  so a chunk answered 4xx is split in halves (bisection) until the parts are small, and a
  small part is sent as a ``$batch`` with ``Prefer: odata.continue-on-error``: the bad records
  are named with their own status, code and message while every good record still lands.
  A set whose bulk message is not supported (400 "… message is not supported …", or absent
  from ``$metadata`` when it was read) is written with ``$batch`` PATCH upserts instead
  (at most 1000 requests per batch).
- Chunks run concurrently across the pool's transports, each transport taking new chunks only
  while it has room under its adaptive concurrency limit (a throttled identity does not hoard
  work that another identity could do).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import odata
from .transport import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ReadOnlyViolation,
    ServiceError,
    Transport,
)

logger = logging.getLogger("cutover.dataverse")

NAMESPACE = "Microsoft.Dynamics.CRM"
MAX_PAGE_SIZE = 5000
MAX_BATCH_REQUESTS = 1000
MAX_BULK_TARGETS = 1000
#: Records per UpsertMultiple / CreateMultiple request, chosen by measurement
#: (benchmarks/bench_dataverse_writes.py --sweep, 100 / 250 / 500 / 1000 under the scaled
#: service-protection limits): 1000 gave the highest steady-state throughput for a pool of 1
#: and of 4 identities; per-request overhead is amortised (99.6 % of the cost model's
#: asymptotic bound) and a bad record costs ~2·log2(1000/16) cheap failed requests to isolate.
#: Pass `chunk=` for tables with heavy plug-ins, where one request per 1000 rows may run long.
DEFAULT_CHUNK = 1000
#: A failed bulk part of at most this many records is resolved record by record in one $batch.
ISOLATE_BELOW = 16
NOT_SUPPORTED_CODE = "0x8004800d"
OBJECT_DOES_NOT_EXIST = "0x80040217"
_JSON = {"Content-Type": "application/json; charset=utf-8"}

ProgressCallback = Callable[[int, int], Any]


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFailure:
    """One record that did not land: where it was in the input, its key, and the service's answer."""

    index: int  # position in the records list given to bulk_upsert / bulk_create
    key: str | None  # the record's id (None for a create without a client-chosen id)
    status: int | None  # HTTP status of the record's own answer (None: never answered)
    code: str | None  # Dataverse error code, e.g. "0x80040203"
    message: str
    logical_name: str = ""

    def __str__(self) -> str:
        who = f"{self.logical_name or 'record'} {self.key}" if self.key else (self.logical_name or "record")
        status = f"{self.status}" if self.status is not None else "no answer"
        code = f" {self.code}" if self.code else ""
        return f"record {self.index} ({who}): {status}{code} — {self.message}"


@dataclass
class BulkResult:
    """Per-record outcomes of a bulk write: every input record is either succeeded or failed."""

    total: int
    succeeded: list[str] = field(default_factory=list)  # ids that landed, in input order
    succeeded_indexes: list[int] = field(default_factory=list)  # their positions in the input
    failures: list[RecordFailure] = field(default_factory=list)  # in input order
    bulk_requests: int = 0  # UpsertMultiple / CreateMultiple requests sent (incl. failed ones)
    batch_requests: int = 0  # $batch requests sent
    used_batch_fallback: bool = False  # the set does not support the bulk message

    @property
    def ok(self) -> bool:
        return not self.failures and len(self.succeeded) == self.total

    def summary(self) -> str:
        head = f"{len(self.succeeded)} of {self.total} records written, {len(self.failures)} failed"
        return head + "".join(f"\n  {f}" for f in self.failures[:20]) + (f"\n  … and {len(self.failures) - 20} more" if len(self.failures) > 20 else "")


# --- $metadata ----------------------------------------------------------------------------------

_EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


@dataclass
class EntityTypeInfo:
    name: str  # qualified
    base_type: str | None
    key: tuple[str, ...]
    properties: dict[str, str]  # name -> Edm type
    navigation: set[str]


@dataclass
class ActionInfo:
    name: str
    bound_to: str | None  # qualified entity type the action is bound to (None: unbound)
    collection: bool  # bound to a collection (e.g. CreateMultiple) rather than one entity
    returns: str | None


class Metadata:
    """What `$metadata` says the environment serves: entity sets, fields, actions, functions."""

    def __init__(self, namespace: str, entity_sets: dict[str, str], types: dict[str, EntityTypeInfo],
                 actions: list[ActionInfo], functions: set[str]):
        self.namespace = namespace
        self.entity_sets = entity_sets  # set name -> qualified entity type
        self.types = types
        self.actions = actions
        self.functions = functions

    @classmethod
    def parse(cls, xml: bytes | str) -> "Metadata":
        root = ET.fromstring(xml)
        entity_sets: dict[str, str] = {}
        types: dict[str, EntityTypeInfo] = {}
        actions: list[ActionInfo] = []
        functions: set[str] = set()
        namespace = NAMESPACE
        for schema in root.iter(f"{_EDM}Schema"):
            ns = schema.get("Namespace", "")
            alias = schema.get("Alias")
            namespace = ns or namespace

            def qualify(name: str | None, ns=ns, alias=alias) -> str | None:
                if name is None:
                    return None
                if alias and name.startswith(alias + "."):
                    return ns + name[len(alias):]
                return name

            for et in schema.findall(f"{_EDM}EntityType"):
                qname = f"{ns}.{et.get('Name')}"
                key = tuple(p.get("Name") for p in et.findall(f"{_EDM}Key/{_EDM}PropertyRef"))
                props = {p.get("Name"): p.get("Type", "") for p in et.findall(f"{_EDM}Property")}
                navs = {p.get("Name") for p in et.findall(f"{_EDM}NavigationProperty")}
                types[qname] = EntityTypeInfo(qname, qualify(et.get("BaseType")), key, props, navs)
            for act in schema.findall(f"{_EDM}Action"):
                params = act.findall(f"{_EDM}Parameter")
                bound_to, collection = None, False
                if act.get("IsBound") == "true" and params:
                    ptype = params[0].get("Type", "")
                    if ptype.startswith("Collection(") and ptype.endswith(")"):
                        ptype, collection = ptype[len("Collection("):-1], True
                    bound_to = qualify(ptype)
                ret = act.find(f"{_EDM}ReturnType")
                actions.append(ActionInfo(act.get("Name"), bound_to, collection, qualify(ret.get("Type")) if ret is not None else None))
            for fn in schema.findall(f"{_EDM}Function"):
                functions.add(fn.get("Name"))
            for container in schema.findall(f"{_EDM}EntityContainer"):
                for es in container.findall(f"{_EDM}EntitySet"):
                    entity_sets[es.get("Name")] = qualify(es.get("EntityType"))
                for fi in container.findall(f"{_EDM}FunctionImport"):
                    functions.add(fi.get("Name"))
                for ai in container.findall(f"{_EDM}ActionImport"):
                    actions.append(ActionInfo(ai.get("Name"), None, False, None))
        return cls(namespace, entity_sets, types, actions, functions)

    def has_entity_set(self, name: str) -> bool:
        return name in self.entity_sets

    def entity_type(self, entity_set: str) -> EntityTypeInfo | None:
        qname = self.entity_sets.get(entity_set)
        return self.types.get(qname) if qname else None

    def fields(self, entity_set: str) -> set[str]:
        """Property and navigation-property names of the set's entity type (base types included)."""
        out: set[str] = set()
        info = self.entity_type(entity_set)
        seen: set[str] = set()
        while info is not None and info.name not in seen:
            seen.add(info.name)
            out |= set(info.properties) | info.navigation
            info = self.types.get(info.base_type) if info.base_type else None
        return out

    def has_field(self, entity_set: str, field_name: str) -> bool:
        return field_name in self.fields(entity_set)

    def has_action(self, name: str) -> bool:
        return any(a.name == name for a in self.actions)

    def has_function(self, name: str) -> bool:
        return name in self.functions

    def bound_actions(self, entity_set: str) -> set[str]:
        """Names of actions bound to the set's entity type (one entity or a collection of them)."""
        qname = self.entity_sets.get(entity_set)
        if qname is None:
            return set()
        chain: set[str] = set()
        info = self.types.get(qname)
        while info is not None and info.name not in chain:
            chain.add(info.name)
            info = self.types.get(info.base_type) if info.base_type else None
        chain.add(qname)
        return {a.name for a in self.actions if a.bound_to in chain}

    def supports_bulk(self, entity_set: str, message: str = "UpsertMultiple") -> bool:
        qname = self.entity_sets.get(entity_set)
        return any(a.name == message and a.collection and a.bound_to == qname for a in self.actions)


# --- $batch codec (multipart/mixed, OData 4.0 Part 1 §11.7; RFC 2046 §5.1) ------------------------


@dataclass
class BatchPart:
    """One request to put into a $batch."""

    method: str
    url: str  # absolute
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None


@dataclass
class BatchPartResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    content_id: str | None


def encode_batch(parts: Sequence[BatchPart], boundary: str | None = None) -> tuple[bytes, str]:
    """The body and Content-Type of a $batch carrying `parts` as independent requests (no changesets)."""
    if len(parts) > MAX_BATCH_REQUESTS:
        raise ValueError(f"a $batch carries at most {MAX_BATCH_REQUESTS} requests, not {len(parts)}")
    bodies = [p.body or b"" for p in parts]
    while True:
        boundary = boundary or f"batch_{uuid.uuid4()}"
        marker = f"--{boundary}".encode()
        if not any(marker in b for b in bodies):
            break
        boundary = None
    out = bytearray()
    for p in parts:
        out += f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n".encode()
        if p.content_id is not None:
            out += f"Content-ID: {p.content_id}\r\n".encode()
        out += b"\r\n"
        out += f"{p.method.upper()} {p.url} HTTP/1.1\r\n".encode()
        headers = dict(p.headers)
        if p.body is not None:
            headers.setdefault("Content-Type", "application/json; type=entry")
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} contains a line break")
            out += f"{name}: {value}\r\n".encode("latin-1")
        out += b"\r\n"
        if p.body:
            out += p.body
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/mixed; boundary={boundary}"


def _boundary(content_type: str) -> str | None:
    m = re.search(r'boundary\s*=\s*("([^"]+)"|[^;\s]+)', content_type or "", re.I)
    if not m:
        return None
    return m.group(2) or m.group(1)


def _split_headers(data: bytes) -> tuple[dict[str, str], bytes]:
    """Headers up to the first blank line (CRLF or LF), and the rest."""
    m = re.search(rb"\r?\n\r?\n", data)
    if m is None:
        head, rest = data, b""
    else:
        head, rest = data[: m.start()], data[m.end():]
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        if b":" in line:
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
    return headers, rest


def decode_batch(body: bytes, content_type: str) -> list[BatchPartResponse]:
    """The responses of a $batch answer, in order; a changeset's responses are flattened in place."""
    boundary = _boundary(content_type)
    if not boundary:
        raise ValueError(f"the $batch answer has no multipart boundary (Content-Type {content_type!r})")
    delim = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    out: list[BatchPartResponse] = []
    matches = list(delim.finditer(body))
    for m, nxt in zip(matches, matches[1:]):
        if m.group(1):
            break
        raw = body[m.end(): nxt.start()]
        part_headers, rest = _split_headers(raw)
        ctype = part_headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            out.extend(decode_batch(rest, ctype))
            continue
        status_line, _, after = rest.lstrip(b"\r\n").partition(b"\n")
        sm = re.match(rb"HTTP/\d\.\d\s+(\d{3})", status_line.strip())
        if sm is None:
            raise ValueError(f"a $batch answer part has no status line: {status_line[:80]!r}")
        headers, payload = _split_headers(after)
        content_id = part_headers.get("content-id") or headers.get("content-id")
        out.append(BatchPartResponse(int(sm.group(1)), headers, payload, content_id))
    return out


def _part_error(part: BatchPartResponse) -> tuple[str | None, str]:
    try:
        body = odata.loads(part.body) if part.body.strip() else None
    except ValueError:
        return None, part.body[:300].decode("utf-8", "replace") or f"HTTP {part.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code") or None, str(body["error"].get("message") or body["error"])
    return None, f"HTTP {part.status}"


# --- the client ---------------------------------------------------------------------------------


def deterministic_id(namespace: uuid.UUID, legacy_id: str) -> str:
    """The milestone id for a legacy id: ``uuid5(namespace, legacy_id)`` (DESIGN: re-running never duplicates)."""
    return str(uuid.uuid5(namespace, str(legacy_id)))


def _guid(key: object) -> str:
    try:
        return str(uuid.UUID(str(key)))
    except ValueError:
        raise ValueError(f"{key!r} is not a GUID; Dataverse keys are GUIDs (or pass a mapping for an alternate key)") from None


def _key_segment(key: object) -> str:
    """``(guid)`` or, for an alternate key mapping, ``(name='value',…)``."""
    if isinstance(key, Mapping):
        if not key:
            raise ValueError("an alternate key needs at least one column")
        return "(" + ",".join(f"{odata.field_name(k)}={odata.quote(v)}" for k, v in key.items()) + ")"
    return f"({_guid(key)})"


def _segment_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"not an entity set, action or function name: {name!r}")
    return name


@dataclass
class _Job:
    """One bulk call's shared state."""

    entity_set: str
    logical_name: str
    key_field: str
    message: str  # "UpsertMultiple" | "CreateMultiple"
    create: bool
    records: list[dict]
    result: BulkResult
    on_progress: ProgressCallback | None
    use_batch: bool = False
    done: int = 0
    fatal: BaseException | None = None
    progress_failed: bool = False
    outcomes: dict[int, tuple[str | None, RecordFailure | None]] = field(default_factory=dict)


class DataverseResponseError(ServiceError):
    """A 2xx answer that is not the JSON the Web API gives (a proxy page, a wrong URL)."""


def _json(t: Transport, method: str, response: Any, *, require: tuple[str, ...] = ()) -> Any:
    try:
        body = odata.loads(response.content)
    except ValueError as exc:
        raise DataverseResponseError(
            t.environment, method, str(response.request.url),
            f"the answer is not JSON ({exc}); check that the profile's Dataverse URL is the organization URL "
            "(https://<org>.crm.dynamics.com) and that no proxy answers in its place",
        ) from None
    missing = [k for k in require if not isinstance(body, dict) or k not in body]
    if missing:
        raise DataverseResponseError(t.environment, method, str(response.request.url), f"the answer lacks {', '.join(missing)}; this does not look like the Dataverse Web API")
    return body


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

    async def __aenter__(self) -> "DataverseClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _transport(self) -> Transport:
        t = self.pool[self._next % len(self.pool)]
        self._next += 1
        return t

    def _refuse_writes(self, method: str, path: str) -> None:
        if self.read_only:
            raise ReadOnlyViolation(self.environment, method, self.base_url + path, "this client is read-only (verification never writes); the request was not sent")

    @staticmethod
    def deterministic_id(namespace: uuid.UUID, legacy_id: str) -> str:
        return deterministic_id(namespace, legacy_id)

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

        `filter` is OData text; build it with :mod:`cutover.odata` so values are quoted.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        params: dict[str, str] = {}
        if select:
            params["$select"] = odata.select(select)
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = odata.orderby(*([orderby] if isinstance(orderby, str) else orderby))
        if top is not None:
            params["$top"] = str(int(top))
        t = self._transport()
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        url: str | None = _segment_name(entity_set)
        first = True
        while url:
            r = await t.request("GET", url, params=params if first else None, headers=headers)
            first = False
            page = _json(t, "GET", r, require=("value",))
            yield page["value"]
            link = page.get("@odata.nextLink")
            if link:
                self._check_same_service(t, link)
                if link == url:
                    raise DataverseResponseError(t.environment, "GET", link, "the service sent the same @odata.nextLink twice; the read stopped to avoid an endless loop")
            url = link

    def _check_same_service(self, t: Transport, link: str) -> None:
        if link.startswith(("http://", "https://")):
            a, b = urlsplit(link), urlsplit(t.base_url)
            if (a.scheme, a.netloc) != (b.scheme, b.netloc) or not a.path.startswith(b.path):
                raise ServiceError(self.environment, "GET", link, f"the service sent a next-page link outside {t.base_url}; it was not followed (the sign-in token is only sent to the service root of the profile)")

    async def query_all(self, entity_set: str, **options) -> list[dict]:
        """Every row of :meth:`query` in one list (for small sets; stream large ones)."""
        rows: list[dict] = []
        async for page in self.query(entity_set, **options):
            rows.extend(page)
        return rows

    async def get(self, entity_set: str, key: object, select: Sequence[str] | str | None = None) -> dict | None:
        """One record by key, or None when it does not exist (404 "Does Not Exist")."""
        path = _segment_name(entity_set) + _key_segment(key)
        params = {"$select": odata.select(select)} if select else None
        t = self._transport()
        r = await t.request("GET", path, params=params, accept=(404,))
        if r.status_code == 404:
            code, text = _error_of(r.content)
            if code not in (None, OBJECT_DOES_NOT_EXIST):  # e.g. an unknown entity set: not "no such record"
                raise NotFound(self.environment, "GET", self.base_url + path, f"not found (404, {code}): {text}", status=404, code=code)
            return None
        return _json(t, "GET", r)

    # --- single writes ---

    async def upsert(self, entity_set: str, key: object, record: Mapping[str, Any], *, create_only: bool = False, update_only: bool = False) -> str:
        """``PATCH set(key)``: create or update; create_only → ``If-None-Match: *`` (412 if present),
        update_only → ``If-Match: *`` (404 if missing). Plain upserts are retried on 5xx and lost
        answers; a create-only write whose answer is lost raises OutcomeUnknown instead."""
        if create_only and update_only:
            raise ValueError("create_only and update_only exclude each other")
        path = _segment_name(entity_set) + _key_segment(key)
        self._refuse_writes("PATCH", path)
        headers = dict(_JSON)
        if create_only:
            headers["If-None-Match"] = "*"
        if update_only:
            headers["If-Match"] = "*"
        # A plain upsert may be resent safely; a create-only one may not: resent after a lost
        # answer it would meet our own record and answer 412. Lost answers -> OutcomeUnknown.
        await self._transport().request("PATCH", path, content=odata.dumps(dict(record)), headers=headers, idempotent=not create_only)
        return _guid(key) if not isinstance(key, Mapping) else path

    # --- actions and functions ---

    async def action(self, entity_set: str, key: object, name: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """Invoke a bound action ``set(key)/Microsoft.Dynamics.CRM.name``; returns its JSON answer or None."""
        path = f"{_segment_name(entity_set)}{_key_segment(key)}/{NAMESPACE}.{_segment_name(name)}"
        return await self._post_action(path, body)

    async def collection_action(self, entity_set: str, name: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """Invoke an action bound to the whole set, ``set/Microsoft.Dynamics.CRM.name``."""
        return await self._post_action(f"{_segment_name(entity_set)}/{NAMESPACE}.{_segment_name(name)}", body)

    async def unbound_action(self, name: str, body: Mapping[str, Any] | None = None) -> dict | None:
        """Invoke an unbound action ``name``; returns its JSON answer or None."""
        return await self._post_action(_segment_name(name), body)

    async def _post_action(self, path: str, body: Mapping[str, Any] | None) -> dict | None:
        self._refuse_writes("POST", path)
        t = self._transport()
        r = await t.request("POST", path, content=odata.dumps(dict(body or {})), headers=dict(_JSON), idempotent=False)
        return _json(t, "POST", r) if r.content.strip() else None

    async def function(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call a function, e.g. ``function("WhoAmI")``; parameters go as aliases ``name(p=@p)?@p=<literal>``."""
        path = _segment_name(name)
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
            except ET.ParseError as exc:
                raise ServiceError(self.environment, "GET", self.base_url + "$metadata", f"$metadata is not valid CSDL XML ({exc}); check the Dataverse URL of the profile") from None
        return self._metadata

    # --- bulk writes ---

    async def bulk_upsert(
        self,
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key_field: str | None = None,
        chunk: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResult:
        """Upsert `records` (each carrying its id in `key_field`, default ``<logical_name>id``) with
        UpsertMultiple in chunks across the pool, falling back to $batch; per-record outcomes."""
        return await self._bulk(entity_set, logical_name, records, key_field=key_field, chunk=chunk, on_progress=on_progress, create=False)

    async def bulk_create(
        self,
        entity_set: str,
        logical_name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        key_field: str | None = None,
        chunk: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResult:
        """Create `records` with CreateMultiple (not idempotent: a lost answer is reported as
        outcome unknown, never resent); ids optional; per-record outcomes."""
        return await self._bulk(entity_set, logical_name, records, key_field=key_field, chunk=chunk, on_progress=on_progress, create=True)

    async def _bulk(self, entity_set, logical_name, records, *, key_field, chunk, on_progress, create) -> BulkResult:
        _segment_name(entity_set)
        _segment_name(logical_name)
        message = "CreateMultiple" if create else "UpsertMultiple"
        self._refuse_writes("POST", f"{entity_set}/{NAMESPACE}.{message}")
        size = chunk or self.chunk
        if not 1 <= size <= MAX_BULK_TARGETS:
            raise ValueError(f"chunk must be between 1 and {MAX_BULK_TARGETS}")
        key_field = key_field or f"{logical_name}id"
        job = _Job(entity_set, logical_name, key_field, message, create, [dict(r) for r in records], BulkResult(total=len(records)), on_progress)
        if (entity_set, message) in self._no_bulk or (self._metadata is not None and self._metadata.has_entity_set(entity_set) and not self._metadata.supports_bulk(entity_set, message)):
            job.use_batch = True
        ready: list[int] = []
        seen: dict[str, int] = {}
        for i, rec in enumerate(job.records):
            raw = rec.get(key_field)
            if raw is None:
                if not create:
                    await self._fail(job, [i], None, "MissingKey", f"the record has no '{key_field}'; upserts need the record's id (use deterministic_id(namespace, legacy_id))")
                    continue
                ready.append(i)
                continue
            try:
                key = _guid(raw)
            except ValueError as exc:
                await self._fail(job, [i], None, "BadKey", str(exc))
                continue
            rec[key_field] = key
            if key in seen:
                await self._fail(job, [i], None, "DuplicateKey", f"the same id as record {seen[key]} appears again in this load; each record must have its own id")
                continue
            seen[key] = i
            ready.append(i)
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for start in range(0, len(ready), size):
            queue.put_nowait(ready[start:start + size])
        if ready:
            await self._run_pool(job, queue)
        for i in ready:  # defensive: every record gets an outcome, whatever happened above
            if i not in job.outcomes:
                key = job.records[i].get(key_field)
                job.outcomes[i] = (None, RecordFailure(i, str(key) if key else None, None, "NoOutcome", "no answer was recorded for this record; re-run the load (upserts are safe to repeat)", logical_name))
        result = job.result
        for i in sorted(job.outcomes):
            ok_id, failure = job.outcomes[i]
            if failure is None:
                result.succeeded.append(ok_id)
                result.succeeded_indexes.append(i)
            else:
                result.failures.append(failure)
        result.used_batch_fallback = job.use_batch
        if job.fatal is not None:
            job.fatal.bulk_result = result  # type: ignore[attr-defined]
            raise job.fatal
        return result

    async def _run_pool(self, job: _Job, queue: asyncio.Queue) -> None:
        cond = asyncio.Condition()
        busy = {id(t): 0 for t in self.pool}

        async def worker(t: Transport) -> None:
            while True:
                async with cond:
                    # no more chunks than the transport may have in flight: a throttled identity
                    # (halved limit, waiting out Retry-After) does not hoard work others could do
                    await cond.wait_for(lambda: busy[id(t)] < max(1, t.limit.limit))
                    busy[id(t)] += 1
                try:
                    items = await queue.get()
                    try:
                        if job.fatal is not None:
                            await self._fail(job, items, None, "NotSent", f"not sent: the load stopped at an earlier error ({job.fatal})")
                        else:
                            await self._chunk(t, job, items, queue)
                    except (ReadOnlyViolation, PermissionDenied, AuthenticationFailed, ConnectionFailed, _SetMissing) as exc:
                        job.fatal = job.fatal or exc
                        await self._fail(job, items, exc.status, exc.code, exc.message)
                    except ServiceError as exc:
                        await self._fail(job, items, exc.status, exc.code or type(exc).__name__, exc.message)
                    except Exception as exc:  # a defect or a failing on_progress: stop, keep every outcome so far
                        job.fatal = job.fatal or exc
                        await self._fail(job, items, None, type(exc).__name__, f"not confirmed: {exc}")
                    finally:
                        queue.task_done()
                finally:
                    async with cond:
                        busy[id(t)] -= 1
                        cond.notify_all()
                await asyncio.sleep(0)  # let the other identities' workers take their turn

        slots = max(max(1, min(t.limit.maximum, 52)) for t in self.pool)
        # interleaved, so that the identities take turns from the first chunk on
        workers = [asyncio.create_task(worker(t)) for n in range(slots) for t in self.pool if n < max(1, min(t.limit.maximum, 52))]
        try:
            await queue.join()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _record(self, job: _Job, index: int, ok_id: str | None, failure: RecordFailure | None) -> None:
        if index in job.outcomes:
            return
        job.outcomes[index] = (ok_id, failure)
        job.done += 1

    async def _progress(self, job: _Job) -> None:
        """Report progress. A failing callback (a closed screen, a dropped SSH session) stops the
        load — nothing more is sent, every outcome so far is kept — but never kills a worker."""
        if job.on_progress is None or job.progress_failed:
            return
        try:
            out = job.on_progress(job.done, job.result.total)
            if inspect.isawaitable(out):
                await out
        except Exception as exc:
            job.progress_failed = True
            job.fatal = job.fatal or exc

    async def _fail(self, job: _Job, items: Iterable[int], status: int | None, code: str | None, message: str) -> None:
        for i in items:
            key = job.records[i].get(job.key_field)
            await self._record(job, i, None, RecordFailure(i, str(key) if key is not None else None, status, code, message, job.logical_name))
        await self._progress(job)

    async def _chunk(self, t: Transport, job: _Job, items: list[int], queue: asyncio.Queue) -> None:
        if job.use_batch:
            await self._batch(t, job, items)
            return
        path = f"{job.entity_set}/{NAMESPACE}.{job.message}"
        odata_type = f"{NAMESPACE}.{job.logical_name}"
        targets = [{"@odata.type": odata_type, **job.records[i]} for i in items]
        job.result.bulk_requests += 1
        try:
            r = await t.request("POST", path, content=odata.dumps({"Targets": targets}), headers=dict(_JSON), idempotent=not job.create)
        except (BadRequest, NotFound) as exc:
            if _set_missing(exc):
                raise _SetMissing(exc.environment, exc.method, exc.url, exc.message, status=exc.status, code=exc.code) from None
            if _not_supported(exc):
                logger.info("%s: %s is not supported on %s; writing with $batch", self.environment, job.message, job.entity_set)
                self._no_bulk.add((job.entity_set, job.message))
                job.use_batch = True
                await self._batch(t, job, items)
                return
            if len(items) <= ISOLATE_BELOW:
                await self._batch(t, job, items)
                return
            mid = len(items) // 2  # all-or-nothing: nothing of this chunk landed; find the bad records
            queue.put_nowait(items[:mid])
            queue.put_nowait(items[mid:])
            return
        except OutcomeUnknown as exc:
            await self._fail(job, items, exc.status, "OutcomeUnknown", exc.message)
            return
        body = odata.loads(r.content) if r.content.strip() else {}
        ids = body.get("Ids") if isinstance(body, dict) else None
        for n, i in enumerate(items):
            given = job.records[i].get(job.key_field)
            got = ids[n] if isinstance(ids, list) and n < len(ids) else given
            await self._record(job, i, str(got) if got is not None else None, None)
        await self._progress(job)

    async def _batch(self, t: Transport, job: _Job, items: list[int]) -> None:
        for start in range(0, len(items), MAX_BATCH_REQUESTS):
            await self._one_batch(t, job, items[start:start + MAX_BATCH_REQUESTS])

    async def _one_batch(self, t: Transport, job: _Job, items: list[int]) -> None:
        parts: list[BatchPart] = []
        for i in items:
            rec = dict(job.records[i])
            key = rec.pop(job.key_field, None)
            rec.pop("@odata.type", None)
            if job.create:
                if key is not None:
                    rec[job.key_field] = key
                parts.append(BatchPart("POST", t.base_url + job.entity_set, odata.dumps(rec).encode(), content_id=str(i)))
            else:
                parts.append(BatchPart("PATCH", f"{t.base_url}{job.entity_set}({key})", odata.dumps(rec).encode(), content_id=str(i)))
        content, ctype = encode_batch(parts)
        job.result.batch_requests += 1
        try:
            r = await t.request(
                "POST", "$batch", content=content,
                headers={"Content-Type": ctype, "Prefer": "odata.continue-on-error"}, idempotent=not job.create,
            )
        except OutcomeUnknown as exc:
            await self._fail(job, items, exc.status, "OutcomeUnknown", exc.message)
            return
        try:
            answers = decode_batch(r.content, r.headers.get("content-type", ""))
        except ValueError as exc:
            await self._fail(job, items, r.status_code, "BadBatchAnswer", f"the $batch answer could not be read ({exc}); re-run the load (upserts are safe to repeat)")
            return
        by_id = {a.content_id: a for a in answers if a.content_id is not None}
        for n, i in enumerate(items):
            a = by_id.get(str(i)) or (answers[n] if not by_id and n < len(answers) else None)
            key = job.records[i].get(job.key_field)
            if a is None:
                await self._record(job, i, None, RecordFailure(i, str(key) if key else None, None, "NoAnswer", "the $batch answer has no response for this record; it was not applied — re-run the load", job.logical_name))
            elif a.status < 400:
                entity_id = a.headers.get("odata-entityid", "")
                m = re.search(r"\(([0-9a-fA-F-]{36})\)\s*$", entity_id)
                await self._record(job, i, m.group(1) if m else (str(key) if key else None), None)
            else:
                code, text = _part_error(a)
                await self._record(job, i, None, RecordFailure(i, str(key) if key else None, a.status, code, text, job.logical_name))
        await self._progress(job)


def _error_of(content: bytes) -> tuple[str | None, str]:
    try:
        body = odata.loads(content)
    except ValueError:
        return None, content[:300].decode("utf-8", "replace")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("code") or None, str(body["error"].get("message"))
    return None, str(body)[:300]


class _SetMissing(NotFound):
    """The entity set itself is unknown: no record of the load can land."""


def _set_missing(exc: ServiceError) -> bool:
    return exc.status == 404 and "resource not found for the segment" in (exc.message or "").lower()


def _not_supported(exc: ServiceError) -> bool:
    """Dataverse answers 400 with 0x8004800d / "The 'X' message is not supported for entities of type 'Y'"."""
    text = (exc.message or "").lower()
    return exc.code == NOT_SUPPORTED_CODE or ("message is not supported" in text) or ("is not supported for entities" in text)


__all__ = [
    "DEFAULT_CHUNK", "ActionInfo", "BatchPart", "BatchPartResponse", "BulkResult", "DataverseClient", "EntityTypeInfo",
    "Metadata", "RecordFailure", "decode_batch", "deterministic_id", "encode_batch",
]
