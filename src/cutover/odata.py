"""Building OData query text and JSON bodies safely, for both Dataverse and Finance and Operations.

Query text (``$filter``, ``$select``) is never built by pasting values into strings: every
value goes through :func:`quote`, every field name through :func:`field_name`, so a customer
called ``O'Brien`` or a name containing `` or 1 eq 1`` cannot change the meaning of a query.

Literal forms (OData 4.0 ABNF, as Dataverse and F&O accept them):

======================  ===========================================  ==============================
Python value            literal                                      example
======================  ===========================================  ==============================
``str``                 single-quoted, ``'`` doubled                 ``'O''Brien'``
``uuid.UUID``           bare GUID                                    ``5f0c…-…``
``bool``                ``true`` / ``false``
``int``                 digits                                       ``192350001``
``decimal.Decimal``     exact fixed-point text, never via float      ``1234.50``
``None``                ``null``
``datetime.date``       ``YYYY-MM-DD``                               ``2026-10-31``
``datetime.datetime``   UTC, ``Z`` suffix (naive is taken as UTC)    ``2026-10-31T12:00:00Z``
:class:`Enum`           ``Namespace.Type'Member'`` (F&O enums)       see :func:`enum_literal`
======================  ===========================================  ==============================

``float`` is refused: money is Decimal (DESIGN, Conventions) and a float literal would round.
A GUID held in a ``str`` is quoted like any string; pass a ``uuid.UUID`` for a GUID literal.

JSON: :func:`dumps` writes ``Decimal`` as exact JSON numbers (``Decimal('1234.50')`` →
``1234.50``) and :func:`loads` reads every JSON number with a fraction as ``Decimal``, so money
survives a round trip without ever passing through a binary float.

URL segments (OData 4.0 URL Conventions §4.3): an entity is addressed as ``set(guid)`` or,
by an alternate key, ``set(name='value',…)`` (:func:`key_segment`); entity set, action and
function names are plain identifiers (:func:`name_segment`), so no caller-supplied text can
add a path segment or a query to a URL.

Error answers (OData JSON Format 4.0 §21.1): ``{"error": {"code": …, "message": …}}`` — the
shape Dataverse and F&O answer with, in a whole response and in a ``$batch`` part alike — are
read by the one function :func:`error_of`, which also understands the OAuth 2.0 form
``{"error": …, "error_description": …}`` (RFC 6749 §5.2) that gateways answer with, and falls
back on the first 300 characters of whatever else came.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "Enum",
    "and_",
    "compare",
    "dumps",
    "enum_literal",
    "error_of",
    "field_name",
    "filter_eq",
    "guid",
    "in_",
    "key_segment",
    "loads",
    "name_segment",
    "not_",
    "or_",
    "orderby",
    "quote",
    "refuse_floats",
    "select",
]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD_RE = re.compile(rf"^{_IDENTIFIER}(?:/{_IDENTIFIER})*$")
_QUALIFIED_RE = re.compile(rf"^{_IDENTIFIER}(?:\.{_IDENTIFIER})*$")
_OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_NAME_RE = re.compile(rf"^{_IDENTIFIER}$")
ERROR_TEXT_LIMIT = 300  # characters of an unrecognised error body kept for people


@dataclass(frozen=True)
class Enum:
    """An enum literal value for :func:`quote` / :func:`filter_eq` (F&O: ``ProjTransStatus'Invoiced'``)."""

    type_name: str  # e.g. "Microsoft.Dynamics.DataEntities.ProjTransStatus"
    member: str  # e.g. "Invoiced"

    def __str__(self) -> str:
        return enum_literal(self.type_name, self.member)


def field_name(name: str) -> str:
    """Return `name` if it is a property name or path (``a``, ``_x_value``, ``Nav/field``); else ValueError."""
    if not isinstance(name, str) or not _FIELD_RE.match(name):
        raise ValueError(
            f"not an OData property name: {name!r} (letters, digits and _ only; '/' between path segments)"
        )
    return name


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number and has no OData or JSON form")
    return format(value, "f")  # exact, never an exponent: Decimal('1E+3') -> '1000'


def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text + "Z"


def quote(value: Any) -> str:
    """The OData literal for `value` (see the module table). Raises TypeError for unsupported types."""
    if value is None:
        return "null"
    if isinstance(value, Enum):
        return enum_literal(value.type_name, value.member)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, float):
        raise TypeError(f"float {value!r} in a query: use decimal.Decimal (money is never float) or int")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return _datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as an OData literal")


def enum_literal(namespace_type: str, member: str) -> str:
    """``Namespace.Type'Member'``, e.g. ``enum_literal("Microsoft.Dynamics.DataEntities.ProjTransStatus", "Invoiced")``."""
    if not isinstance(namespace_type, str) or not _QUALIFIED_RE.match(namespace_type):
        raise ValueError(f"not an OData enum type name: {namespace_type!r}")
    if not isinstance(member, str) or not member:
        raise ValueError(f"enum member must be a non-empty string, got {member!r}")
    return f"{namespace_type}'" + member.replace("'", "''") + "'"


def compare(field: str, op: str, value: Any) -> str:
    """``field op literal`` for op in eq, ne, gt, ge, lt, le."""
    if op not in _OPERATORS:
        raise ValueError(f"unknown comparison operator {op!r}; use one of {sorted(_OPERATORS)}")
    return f"{field_name(field)} {op} {quote(value)}"


def filter_eq(field: str, value: Any) -> str:
    """``field eq literal`` (``field eq null`` for None)."""
    return compare(field, "eq", value)


def in_(field: str, values: Iterable[Any]) -> str:
    """OData 4.01 ``field in (v1,v2,…)``. An empty list is refused (it has no valid form)."""
    items = [quote(v) for v in values]
    if not items:
        raise ValueError(f"in_({field!r}, []) has no OData form; skip the query when there is nothing to look for")
    return f"{field_name(field)} in ({','.join(items)})"


def _combine(op: str, clauses: tuple[str | None, ...]) -> str:
    parts = [c for c in clauses if c]
    if not parts:
        raise ValueError(f"{op}_() needs at least one non-empty clause")
    if len(parts) == 1:
        return parts[0]
    return f" {op} ".join(f"({c})" for c in parts)


def and_(*clauses: str | None) -> str:
    """``(a) and (b) …``; None / empty clauses are skipped, one clause is returned as is."""
    return _combine("and", clauses)


def or_(*clauses: str | None) -> str:
    """``(a) or (b) …``; None / empty clauses are skipped, one clause is returned as is."""
    return _combine("or", clauses)


def not_(clause: str) -> str:
    """``not (clause)``."""
    if not clause:
        raise ValueError("not_() needs a clause")
    return f"not ({clause})"


def select(fields: Iterable[str]) -> str:
    """``$select`` text: validated property names joined by commas (a single str is one field)."""
    if isinstance(fields, str):
        fields = [fields]
    names = [field_name(f) for f in fields]
    if not names:
        raise ValueError("select() needs at least one field")
    return ",".join(names)


def orderby(*fields: str) -> str:
    """``$orderby`` text: each item ``"field"`` or ``"field asc"`` / ``"field desc"``."""
    out = []
    for item in fields:
        name, _, direction = item.strip().partition(" ")
        direction = direction.strip().lower()
        if direction not in ("", "asc", "desc"):
            raise ValueError(f"bad $orderby item {item!r}: direction must be asc or desc")
        out.append(field_name(name) + (f" {direction}" if direction else ""))
    if not out:
        raise ValueError("orderby() needs at least one field")
    return ",".join(out)


# --- JSON with exact decimals -----------------------------------------------------------------


def refuse_floats(obj: Any, path: str = "$") -> None:
    """TypeError naming where (``$.Targets[1].msdyn_amount``) if a float is anywhere in `obj`."""
    if isinstance(obj, float):
        raise TypeError(f"float {obj!r} at {path}: use decimal.Decimal (money is never float) or int")
    if isinstance(obj, dict):
        for k, v in obj.items():
            refuse_floats(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            refuse_floats(v, f"{path}[{i}]")


def dumps(obj: Any) -> str:
    """Compact JSON text; Decimal → exact JSON number, UUID → string, date → ``YYYY-MM-DD``,
    datetime → ISO UTC ``…Z``. A float anywhere raises TypeError, as in :func:`quote`: what
    this tool sends is money and keys, and money is never float. Object keys must be strings."""
    refuse_floats(obj)
    # Fast path: the C encoder, with each Decimal first written as a string carrying a random
    # per-call marker, then unwrapped into a bare number. The marker contains NUL characters
    # (escaped as \u0000 in JSON) and 64 random bits, so no genuine string can look like one.
    nonce = secrets.token_hex(8)
    marker = f"\x00{nonce}"

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{marker}{_decimal_text(value)}\x00"
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.datetime):
            return _datetime_text(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} {value!r} is not JSON serialisable")

    text = json.dumps(
        obj,
        default=default,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        skipkeys=False,
        check_circular=True,
        sort_keys=False,
        cls=_StrictKeys,
    )
    if nonce in text:
        text = re.sub('"\\\\u0000' + nonce + '(-?[0-9.]+)\\\\u0000"', r"\1", text)
    return text


class _StrictKeys(json.JSONEncoder):
    """The C encoder turns int/float/bool/None keys into strings; refuse them instead."""

    def iterencode(self, o, _one_shot=False):
        _check_keys(o)
        return super().iterencode(o, _one_shot)


def _check_keys(o: Any) -> None:
    stack = [o]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise TypeError(f"JSON object keys must be str, got {type(k).__name__} {k!r}")
                if isinstance(v, (dict, list, tuple)):
                    stack.append(v)
        elif isinstance(item, (list, tuple)):
            stack.extend(v for v in item if isinstance(v, (dict, list, tuple)))


def loads(text: str | bytes) -> Any:
    """Parse JSON; numbers with a fraction or exponent become Decimal (exact), integers int.

    Integers stay ``int``: a money column can hold both ``5000`` (int) and ``1234.56``
    (Decimal) — F&O writes whole amounts without decimals. Never let a library infer a money
    column's type from such rows (polars would pick Int64 and truncate); build frames with an
    explicit ``pl.Decimal`` schema.
    """
    return json.loads(text, parse_float=Decimal)


# --- URL segments -----------------------------------------------------------------------------


def guid(value: Any) -> str:
    """`value` as a lower-case GUID string; ValueError if it is not a GUID."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a GUID; Dataverse keys are GUIDs (or pass a mapping for an alternate key)"
        ) from None


def key_segment(key: Any) -> str:
    """``(guid)`` or, for an alternate key mapping, ``(name='value',…)`` with every value quoted."""
    if isinstance(key, Mapping):
        if not key:
            raise ValueError("an alternate key needs at least one column")
        return "(" + ",".join(f"{field_name(k)}={quote(v)}" for k, v in key.items()) + ")"
    return f"({guid(key)})"


def name_segment(name: str) -> str:
    """Return `name` if it is an entity set, action or function name (one identifier); else ValueError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"not an entity set, action or function name: {name!r}")
    return name


# --- error answers ----------------------------------------------------------------------------


def error_of(content: bytes | str, status: int, reason: str = "") -> tuple[str | None, str]:
    """``(code, message)`` of an error answer's body (see the module docstring for the shapes).

    An empty body gives `reason` (the status line's phrase) or ``HTTP <status>``; a body that is
    not a known error shape gives its first 300 characters. The code is None when none is given."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    if not text.strip():
        return None, reason or f"HTTP {status}"
    try:
        body = json.loads(text, parse_float=Decimal)
    except ValueError:
        return None, text[:ERROR_TEXT_LIMIT]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return (str(err["code"]) if err.get("code") else None), str(err.get("message") or err)
    if isinstance(body, dict) and "error_description" in body:
        return (str(body["error"]) if body.get("error") else None), str(body["error_description"])
    return None, text[:ERROR_TEXT_LIMIT]
