"""What every ``/_sim/…`` admin endpoint shares: finding the simulator behind a request,
reading a JSON body, checking its fields, and answering — results as JSON, refusals in
Dataverse's error shape.

Used by the admin API (:mod:`cutover.sim.admin`) and by the identity platform's admin surface
(:mod:`cutover.sim.identity_platform`), so both read bodies and answer errors the same way:

* a body that is not JSON, or not a JSON object, or nested past
  :data:`~cutover.sim.jsonguard.MAX_DEPTH`: 400 :data:`~cutover.sim.errors.BAD_PAYLOAD`
  (the gateway has already refused a body over 1 MiB with 413, and a request without the
  admin token or JSON content type, see :mod:`cutover.sim.gateway`);
* a field that is unknown, of the wrong JSON type, or out of range: 400
  :data:`~cutover.sim.errors.INVALID_ARGUMENT` naming the field (:class:`Field`,
  :func:`validate`) — checked for the whole body before anything changes;
* a :class:`~cutover.sim.errors.SimError`: its status, code and message;
* a ``ValueError`` / ``TypeError`` (a value of the wrong kind): 400
  :data:`~cutover.sim.errors.INVALID_ARGUMENT` with the exception's text.

Field rules (:class:`Field`): booleans are JSON ``true``/``false`` only (``"false"`` and
``0`` are refused); integers are JSON integers; numbers are JSON numbers and finite (``NaN``
and ``Infinity``, which Python's ``json`` reads, are refused naming the field); text is a
JSON string; lists are JSON arrays of the declared kind.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import errors, jsonguard
from .errors import SimError


def simulator_of(request: Request) -> Any:
    """The simulator serving ``request`` (a :class:`cutover.sim.simulator.Simulator`; not
    imported here, so that modules the simulator imports may use this one)."""
    return request.app.state.sim


def conn_of(request: Request) -> sqlite3.Connection:
    """The simulator database behind ``request``."""
    return simulator_of(request).conn


def error_response(status: int, message: str, code: str = errors.INVALID_ARGUMENT) -> JSONResponse:
    """An admin refusal in Dataverse's shape: ``{"error": {"code": "0x…", "message": …}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def json_body(request: Request) -> dict:
    """The request's JSON object body (``{}`` when empty); a 400 SimError otherwise."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        # NaN / Infinity are read so that the field checks can name the field carrying one.
        data = jsonguard.loads(raw, allow_constants=True, limit=jsonguard.ADMIN_BODY_LIMIT, what="Request body")
    except jsonguard.JsonRefused as exc:
        raise SimError(exc.status, errors.BAD_PAYLOAD, exc.message) from None
    if not isinstance(data, dict):
        raise SimError(400, errors.BAD_PAYLOAD, "Request body must be a JSON object.")
    return data


def query_int(request: Request, name: str, default: int = 0) -> int:
    """An integer query parameter; a 400 SimError when it is not one."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise SimError(
            400, errors.INVALID_ARGUMENT, f"Query parameter '{name}' must be an integer, not '{text}'."
        ) from None


def reject_unknown(body: dict, known, what: str = "setting") -> None:
    """A 400 SimError naming the keys of ``body`` that are not in ``known``."""
    unknown = set(body) - set(known)
    if unknown:
        raise SimError(
            400,
            errors.INVALID_ARGUMENT,
            f"Unknown {what}(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}.",
        )


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _refuse_field(name: str, rule: str, value: object) -> SimError:
    return SimError(400, errors.INVALID_ARGUMENT, f"{name} must be {rule}; got {_shown(value)}.")


@dataclass(frozen=True)
class Field:
    """The declared JSON type and range of one admin field; :meth:`check` returns the value
    (a list copied) or raises a 400 :class:`SimError` that names the field.

    ``kind``: ``"bool"``, ``"int"``, ``"number"``, ``"text"``, ``"texts"`` (array of strings),
    ``"objects"`` (array of objects) or ``"object"`` (checked against ``fields``).
    ``minimum`` / ``maximum`` bound numbers (inclusive); ``above`` is an exclusive minimum.
    ``choices`` restricts text (and the items of texts). ``nonempty`` refuses ``""`` / ``[]``.
    ``default`` is what a stored setting reads as before anyone set it (a value, or a
    callable taking the database connection).
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()
    nonempty: bool = False
    max_length: int = 4096
    fields: Mapping[str, Field] | None = None
    default: Any = None
    sort: bool = False  # texts: stored sorted and without duplicates

    def _range(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"greater than {self.above:g}")
        if self.minimum is not None:
            parts.append(f"at least {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"at most {self.maximum:g}")
        return " and ".join(parts)

    def _in_range(self, v: float) -> bool:
        return (
            (self.above is None or v > self.above)
            and (self.minimum is None or v >= self.minimum)
            and (self.maximum is None or v <= self.maximum)
        )

    def _text(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise _refuse_field(name, "a JSON string", value)
        if self.nonempty and not value.strip():
            raise _refuse_field(name, "a non-empty string", value)
        if len(value) > self.max_length:
            raise _refuse_field(name, f"at most {self.max_length} characters long", value)
        if self.choices and value not in self.choices:
            raise _refuse_field(name, f"one of {', '.join(self.choices)}", value)
        return value

    def check(self, name: str, value: object) -> object:
        kind = self.kind
        if kind == "bool":
            if type(value) is not bool:
                raise _refuse_field(name, "true or false (a JSON boolean, not a string or number)", value)
            return value
        if kind in ("int", "number"):
            if kind == "int" and type(value) is not int:
                raise _refuse_field(name, "an integer (a JSON number without a fraction, not a string)", value)
            if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
                raise _refuse_field(name, "a finite JSON number (not a string, NaN or Infinity)", value)
            if not self._in_range(value):
                raise _refuse_field(name, f"a number {self._range()}", value)
            return value
        if kind == "text":
            return self._text(name, value)
        if kind in ("texts", "objects"):
            if not isinstance(value, list):
                raise _refuse_field(name, "a JSON array", value)
            if self.nonempty and not value:
                raise _refuse_field(name, "a non-empty array", value)
            if len(value) > self.max_length:
                raise _refuse_field(name, f"an array of at most {self.max_length} items", value)
            if kind == "texts":
                items = [self._text(f"{name}[{i}]", item) for i, item in enumerate(value)]
                return sorted(set(items)) if self.sort else items
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise _refuse_field(f"{name}[{i}]", "a JSON object", item)
            return list(value)
        if kind == "object":
            if not isinstance(value, dict):
                raise _refuse_field(name, "a JSON object", value)
            return validate(value, self.fields or {}, f"{name} field")
        raise AssertionError(f"unknown field kind {kind!r}")

    def read(self, conn: sqlite3.Connection, key: str) -> object:
        """The stored setting ``key`` (this field's default when never set)."""
        from .store import get_setting

        default = self.default(conn) if callable(self.default) else self.default
        return get_setting(conn, key, default)


def Bool(**kw) -> Field:
    return Field("bool", **kw)


def Int(**kw) -> Field:
    return Field("int", **kw)


def Number(**kw) -> Field:
    return Field("number", **kw)


def Text(**kw) -> Field:
    return Field("text", **kw)


def Texts(**kw) -> Field:
    return Field("texts", **kw)


def Objects(**kw) -> Field:
    return Field("objects", **kw)


def Object(fields: Mapping[str, Field], **kw) -> Field:
    return Field("object", fields=fields, **kw)


def validate(body: Mapping[str, object], table: Mapping[str, Field], what: str = "field") -> dict:
    """``body`` checked against ``table``: unknown keys refused (named), each value checked by
    its :class:`Field`; returns the checked values. Raises before the caller changes anything."""
    reject_unknown(body, table, what)
    return {name: table[name].check(name, value) for name, value in body.items()}


def require(body: Mapping[str, object], *names: str) -> None:
    """A 400 naming the first of ``names`` that ``body`` lacks."""
    for name in names:
        if name not in body:
            raise SimError(400, errors.INVALID_ARGUMENT, f"{name} is required.")


def admin(handler: Callable[[Request], Awaitable[object]]) -> Callable[[Request], Awaitable[Response]]:
    """Make an admin endpoint out of ``handler``: its dict or list result is answered as JSON
    (a Response as is), and its refusals as described in the module docstring."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            result = await handler(request)
        except SimError as exc:
            return error_response(exc.status, exc.message, exc.code)
        except (TypeError, ValueError) as exc:
            return error_response(400, str(exc))
        return result if isinstance(result, Response) else JSONResponse(result)

    return wrapped


def log_answer(request: Request, log: Any, **match) -> dict | list:
    """``GET``: the entries of ``log`` after ``?since=`` (matching ``match``); ``DELETE``: clear it."""
    if request.method == "DELETE":
        return log.clear()
    return log.since(query_int(request, "since"), **match)
