"""The Finance and Operations OData subset: read-only entity reads with server paging.

F&O pages at 10,000 rows (or less with `Prefer: odata.maxpagesize`), accepts `$top` and
`$skip`, and returns only the caller's default company unless `cross-company=true`.
Clients may not write here: on the night, F&O changes only through dual-write.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import unquote

from . import errors
from .errors import SimError
from .messages import SimRequest, SimResponse, json_response
from .metadata import fno_metadata
from .query import parse_options, read_page
from .reference import DEFAULT_COMPANY as _DEFAULT_LEGAL_ENTITY
from .schema import FNO
from .store import get_setting

DEFAULT_COMPANY = _DEFAULT_LEGAL_ENTITY.lower()  # a dataAreaId: "usmf"


class FnoService:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def handle(self, req: SimRequest) -> SimResponse:
        try:
            return self._route(req)
        except SimError as exc:
            return SimResponse(
                exc.status,
                exc.fno_body(),
                {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0", **exc.headers},
            )

    def _route(self, req: SimRequest) -> SimResponse:
        path = unquote(req.path.strip("/"))
        if path == "$metadata":
            return SimResponse(
                200, fno_metadata().encode(), {"Content-Type": "application/xml", "OData-Version": "4.0"}
            )
        entity = FNO.get(path)
        name = path.split("(")[0].split("/")[0]
        if name in FNO and req.method.upper() != "GET":
            # Refused for the entity set and for a single record alike (POST, PATCH, PUT, DELETE).
            raise SimError(
                405,
                errors.ODATA_URI_ERROR,
                f"{name} is read-only here: Finance and Operations data changes only through dual-write during the cutover.",
                {"Allow": "GET"},
            )
        if entity is None:
            if name in FNO:
                raise SimError(
                    400,
                    errors.NOT_SUPPORTED,
                    f"The simulator serves {name} as a collection only; read it with $filter on its keys.",
                )
            raise SimError(404, errors.ODATA_URI_ERROR, f"Resource not found for the segment '{name}'.")
        opts = parse_options(entity, req.params, req.max_page_size())
        page = read_page(
            self.conn,
            entity,
            opts,
            base_url=req.service_root,
            set_url=req.service_root + entity.name,
            raw_query=req.query,
            default_company=get_setting(self.conn, "fno_default_company", DEFAULT_COMPANY),
        )
        return json_response(200, page.body, records=page.rows)
