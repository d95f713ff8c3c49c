"""What every ``/_sim/…`` admin endpoint shares: finding the simulator behind a request,
reading a JSON body, and answering — results as JSON, refusals in Dataverse's error shape.

Used by the admin API (:mod:`cutover.sim.admin`) and by the identity platform's admin surface
(:mod:`cutover.sim.identity_platform`), so both read bodies and answer errors the same way:

* a body that is not JSON, or not a JSON object: 400 :data:`~cutover.sim.errors.BAD_PAYLOAD`;
* a :class:`~cutover.sim.errors.SimError`: its status, code and message;
* a ``ValueError`` / ``TypeError`` (a value of the wrong kind): 400
  :data:`~cutover.sim.errors.INVALID_ARGUMENT` with the exception's text.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import errors
from .errors import SimError

if TYPE_CHECKING:
    from .simulator import RequestLog, Simulator


def simulator_of(request: Request) -> Simulator:
    """The simulator serving ``request``."""
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
        data = json.loads(raw)
    except ValueError as exc:
        raise SimError(400, errors.BAD_PAYLOAD, f"Request body is not valid JSON: {exc}") from None
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


def log_answer(request: Request, log: RequestLog, **match) -> dict | list:
    """``GET``: the entries of ``log`` after ``?since=`` (matching ``match``); ``DELETE``: clear it."""
    if request.method == "DELETE":
        return log.clear()
    return log.since(query_int(request, "since"), **match)
