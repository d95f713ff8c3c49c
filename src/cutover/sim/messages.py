"""Framework-free request and response values the simulated services work on.

The Starlette layer turns HTTP into these; `$batch` turns each embedded request into one;
so every request, batched or not, goes through the same service code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from . import errors, jsonguard
from .errors import SimError


def parse_json(body: bytes, what: str, *, parse_float: Callable[[str], object] = Decimal) -> object:
    """A request body as JSON (``null`` when empty), through the one guarded parse
    (:func:`cutover.sim.jsonguard.loads`: depth, size, no NaN/Infinity); a 400 (413 past the
    size limit) :data:`~cutover.sim.errors.BAD_PAYLOAD` SimError in Dataverse's words otherwise.
    ``what`` names the entity type the payload is for. Numbers with a fraction are Decimals."""
    try:
        return jsonguard.loads(
            body or b"null", parse_float=parse_float, limit=jsonguard.API_BODY_LIMIT, what="The request body"
        )
    except jsonguard.JsonRefused as exc:
        raise SimError(
            exc.status,
            errors.BAD_PAYLOAD,
            f"Error identified in Payload provided by the user for Entity :'{what}'. {exc.message}",
        ) from None


@dataclass
class SimRequest:
    method: str
    path: str  # below the service root, e.g. "accounts(…)" or "CustTransactions"
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    service_root: str  # absolute URL of the service root, ending in "/" (configured, never from Host)

    def json(self, what: str) -> object:
        """The body as JSON, guarded (:func:`parse_json`)."""
        return parse_json(self.body, what)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def prefer(self) -> dict[str, str]:
        """Parsed `Prefer` header: {"odata.maxpagesize": "500", "return": "representation", ...}."""
        out: dict[str, str] = {}
        for part in self.headers.get("prefer", "").split(","):
            part = part.strip()
            if not part:
                continue
            name, _, value = part.partition("=")
            out[name.strip().lower()] = value.strip().strip('"')
        return out

    def max_page_size(self) -> int | None:
        """The client's `Prefer: odata.maxpagesize=N`, or None when it did not ask."""
        text = self.prefer().get("odata.maxpagesize")
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise SimError(
                400, errors.ODATA_URI_ERROR, f"odata.maxpagesize must be an integer, not '{text}'."
            ) from None


@dataclass
class SimResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    records: int = 0  # records read or written: drives the execution-cost model
    writes: bool = False
    inner_requests: int = 1  # a $batch counts each request it carries
    inner_log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, url, status) of batched requests


ODATA_HEADERS = {"OData-Version": "4.0", "Content-Type": "application/json; odata.metadata=minimal"}


def json_response(
    status: int, payload: object | str, records: int = 0, writes: bool = False, **headers: str
) -> SimResponse:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return SimResponse(status, text.encode(), {**ODATA_HEADERS, **headers}, records=records, writes=writes)
