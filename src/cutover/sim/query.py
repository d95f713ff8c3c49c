"""Collection reads: OData query options -> one SQL statement -> one JSON page.

Rows are rendered to JSON by SQLite itself (``json_object``), so money leaves the database
as exact decimal text and a 10,000-row page costs one statement, not 10,000 Python dicts.

Paging: with no ``$orderby`` the order is the key and the continuation token carries the
last key (keyset paging: a row is never skipped or repeated across pages); with ``$orderby``
the token carries an offset. Tokens are opaque to clients, as on the real services.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

from . import errors
from .errors import SimError
from .odata_filter import FilterError, compile_filter
from .schema import EntitySet, Field, Kind

DATAVERSE_MAX_PAGE = 5000
DATAVERSE_COUNT_LIMIT = 5000
FNO_MAX_PAGE = 10000


def money_json_sql(col: str) -> str:
    """SQL rendering a 1/10,000-scaled integer as a JSON number with exact decimal text."""
    a = f"abs({col})"
    return (
        f"json((CASE WHEN {col} < 0 THEN '-' ELSE '' END) || ({a} / 10000) || '.' || "
        f"CASE WHEN {a} % 100 = 0 THEN printf('%02d', ({a} % 10000) / 100) "
        f"ELSE printf('%04d', {a} % 10000) END)"
    )


def value_sql(f: Field) -> str:
    col = f'"{f.name}"'
    if f.kind is Kind.MONEY:
        return money_json_sql(col)
    if f.kind is Kind.ENUM:
        assert f.enum is not None
        whens = " ".join(f"WHEN {v} THEN '{m}'" for m, v in f.enum.members.items())
        return f"CASE {col} {whens} END"
    if f.kind is Kind.BOOL:
        return f"json(CASE WHEN {col} IS NULL THEN NULL WHEN {col} THEN 'true' ELSE 'false' END)"
    return col


def row_json_sql(entity: EntitySet, fields: list[Field]) -> str:
    parts: list[str] = []
    if entity.service == "dataverse":
        parts.append("'@odata.etag', 'W/\"' || sim_version || '\"'")
    for f in fields:
        parts.append(f"'{f.name}', {value_sql(f)}")
    return "json_object(" + ", ".join(parts) + ")"


@dataclass
class ReadOptions:
    select: list[Field]
    where: str
    params: list
    order: list[tuple[Field, bool]]  # (field, descending)
    top: int | None
    skip: int
    count: bool
    page_size: int
    token: dict | None
    cross_company: bool
    top_ignored: bool = False  # Dataverse: $top came with odata.maxpagesize and is ignored


def encode_token(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(text: str) -> dict:
    try:
        padded = text + "=" * (-len(text) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(data, dict):
            raise ValueError
        return data
    except (ValueError, json.JSONDecodeError) as exc:
        raise SimError(400, errors.ODATA_URI_ERROR, "The $skiptoken value is not valid.") from exc


def _field(entity: EntitySet, name: str) -> Field:
    f = entity.by_name.get(name.strip())
    if f is None:
        raise errors.unknown_property(name.strip(), entity.qualified_type)
    return f


def _int_option(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SimError(
            400, errors.ODATA_URI_ERROR, f"Invalid value '{text}' for query option {name}: an integer is required."
        ) from None
    if value < 0:
        raise SimError(
            400, errors.ODATA_URI_ERROR, f"Invalid value '{text}' for query option {name}: must not be negative."
        )
    return value


# Query options each kind of request implements. Anything else is refused with 400 naming
# it — never answered as if it had been applied (issue #8).
COLLECTION_OPTIONS = {
    "dataverse": {"$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$format"},
    "fno": {"$select", "$filter", "$orderby", "$top", "$skip", "$count", "$skiptoken", "$format", "cross-company"},
}
SINGLE_OPTIONS = {"dataverse": {"$select", "$format"}, "fno": {"$select", "$format", "cross-company"}}
#: The options whose refusal says "not served" rather than "unknown".
UNSERVED = {
    "$expand": "The simulator does not serve $expand on entity sets; select the lookup's _<name>_value instead.",
    "$apply": "The simulator does not implement $apply (aggregation); read the rows and aggregate them yourself.",
    "$search": "The simulator does not implement $search.",
    "$compute": "The simulator does not implement $compute.",
}


def check_options(params: dict[str, str], allowed: set[str], what: str = "this request") -> None:
    """Refuse (400, naming it) every query option not in ``allowed``."""
    for name, value in params.items():
        if name in allowed:
            if name == "$format" and value.split(";")[0].strip().lower() not in ("json", "application/json"):
                raise SimError(
                    400, errors.ODATA_URI_ERROR, f"The query option '$format={value}' is not supported: JSON only."
                )
            continue
        if name in UNSERVED:
            raise SimError(
                400, errors.NOT_SUPPORTED, f"The query option '{name}' is not supported on {what}. {UNSERVED[name]}"
            )
        if name == "$skip":
            raise SimError(
                400,
                errors.ODATA_URI_ERROR,
                "The query parameter $skip is not supported. Use paging with odata.maxpagesize and @odata.nextLink.",
            )
        if name.startswith("$"):
            raise SimError(400, errors.ODATA_URI_ERROR, f"The query parameter '{name}' is not supported on {what}.")
        raise SimError(
            400,
            errors.ODATA_URI_ERROR,
            f"The query parameter '{name}' is not supported on {what}; it is not a query option this service defines.",
        )


def parse_options(entity: EntitySet, params: dict[str, str], prefer_page: int | None) -> ReadOptions:
    """Validate and translate a collection read's query options for one entity set."""
    dataverse = entity.service == "dataverse"
    check_options(params, COLLECTION_OPTIONS[entity.service], entity.name)

    select_text = params.get("$select")
    select = [_field(entity, n) for n in select_text.split(",") if n.strip()] if select_text else list(entity.fields)
    for k in entity.key:  # keys always come back, as on both services
        if entity.by_name[k] not in select:
            select.append(entity.by_name[k])

    where, where_params = "1", []
    if params.get("$filter"):
        try:
            where, where_params = compile_filter(params["$filter"], entity)
        except FilterError as exc:
            raise SimError(400, errors.ODATA_URI_ERROR, str(exc)) from None

    order: list[tuple[Field, bool]] = []
    if params.get("$orderby"):
        for item in params["$orderby"].split(","):
            words = item.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise SimError(400, errors.ODATA_URI_ERROR, f"Syntax error in $orderby at '{item.strip()}'.")
            order.append((_field(entity, words[0]), len(words) == 2 and words[1].lower() == "desc"))

    top = _int_option("$top", params["$top"]) if "$top" in params else None
    top_ignored = False
    if dataverse and prefer_page and top is not None:
        # "Don't use $top with Prefer: odata.maxpagesize. If you include both, $top is ignored."
        top, top_ignored = None, True
    skip = _int_option("$skip", params["$skip"]) if "$skip" in params else 0
    count_text = params.get("$count", "false").lower()
    if count_text not in ("true", "false"):
        raise SimError(400, errors.ODATA_URI_ERROR, f"Invalid value '{params['$count']}' for $count: true or false.")
    cap = DATAVERSE_MAX_PAGE if dataverse else FNO_MAX_PAGE
    page = cap if not prefer_page else max(1, min(prefer_page, cap))
    token = decode_token(params["$skiptoken"]) if params.get("$skiptoken") else None
    cross = params.get("cross-company", "false").lower() == "true"
    return ReadOptions(
        select, where, list(where_params), order, top, skip, count_text == "true", page, token, cross, top_ignored
    )


@dataclass
class Page:
    body: str  # the JSON text of the response
    rows: int


def read_page(
    conn: sqlite3.Connection,
    entity: EntitySet,
    opts: ReadOptions,
    *,
    base_url: str,
    set_url: str,
    raw_query: list[tuple[str, str]],
    default_company: str | None = None,
) -> Page:
    """Run one page of a collection read and render the response body."""
    where = [f"({opts.where})"]
    params = list(opts.params)
    if entity.company_specific and not opts.cross_company and default_company:
        where.append('"dataAreaId" = ? COLLATE NOCASE')
        params.append(default_company)
    count_sql_where = " AND ".join(where)
    count_params = list(params)

    key_cols = [f'"{k}"' for k in entity.key]
    offset = opts.skip
    keyset = not opts.order
    if opts.token:
        if keyset and "k" in opts.token:
            marks = ", ".join("?" for _ in key_cols)
            where.append(f"({', '.join(key_cols)}) > ({marks})")
            params.extend(opts.token["k"])
        elif "o" in opts.token:
            offset = int(opts.token["o"])
        else:
            raise SimError(400, errors.ODATA_URI_ERROR, "The $skiptoken value does not belong to this query.")

    if opts.order:
        order_sql = (
            ", ".join(f'"{f.name}" {"DESC" if d else "ASC"}' for f, d in opts.order) + ", " + ", ".join(key_cols)
        )
    else:
        order_sql = ", ".join(key_cols)

    limit = opts.page_size
    remaining_top = None
    if opts.top is not None:
        already = int(opts.token.get("n", 0)) if opts.token else 0
        remaining_top = opts.top - already
        limit = min(limit, max(remaining_top, 0))

    sql = (
        f'SELECT {", ".join(key_cols)}, {row_json_sql(entity, opts.select)} FROM "{entity.table}" '
        f"WHERE {' AND '.join(where)} ORDER BY {order_sql} LIMIT ? OFFSET ?"
    )
    rows = conn.execute(
        sql, (*params, limit + 1, offset if not (keyset and opts.token and "k" in opts.token) else 0)
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    nk = len(key_cols)

    out = ['{"@odata.context":', json.dumps(f"{base_url}$metadata#{entity.name}")]
    if opts.count:
        total = conn.execute(f'SELECT count(*) FROM "{entity.table}" WHERE {count_sql_where}', count_params).fetchone()[
            0
        ]
        if entity.service == "dataverse" and total > DATAVERSE_COUNT_LIMIT:
            out.append(
                f',"@odata.count":{DATAVERSE_COUNT_LIMIT},"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded":true'
            )
        else:
            out.append(f',"@odata.count":{total}')
    out.append(',"value":[')
    out.append(",".join(r[nk] for r in rows))
    out.append("]")
    served_so_far = (int(opts.token.get("n", 0)) if opts.token else 0) + len(rows)
    if more and (remaining_top is None or len(rows) < remaining_top):
        if keyset:
            token = {"k": list(rows[-1][:nk]), "n": served_so_far}
        else:
            token = {"o": offset + len(rows), "n": served_so_far}
        dropped = ("$skiptoken", "$skip", "$top") if opts.top_ignored else ("$skiptoken", "$skip")
        kept = [(k, v) for k, v in raw_query if k not in dropped]
        query = "&".join(f"{quote(k, safe='$-')}={quote(v, safe=',()')}" for k, v in kept)
        link = f"{set_url}?{query + '&' if query else ''}$skiptoken={encode_token(token)}"
        out.append(',"@odata.nextLink":' + json.dumps(link))
    out.append("}")
    return Page("".join(out), len(rows))


def read_one(conn: sqlite3.Connection, entity: EntitySet, key: tuple, select: list[Field] | None = None) -> str | None:
    fields = select or list(entity.fields)
    where = " AND ".join(f'"{k}" = ?' for k in entity.key)
    row = conn.execute(f'SELECT {row_json_sql(entity, fields)} FROM "{entity.table}" WHERE {where}', key).fetchone()
    return None if row is None else row[0]
