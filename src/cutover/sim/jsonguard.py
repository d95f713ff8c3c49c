"""The one guarded JSON parse of the simulator, and its size limits.

Python's ``json`` recurses once per nesting level, so a body of 100,000 ``[`` would end in a
``RecursionError`` (a 500) or worse; and nothing stopped a client from sending gigabytes. Every
JSON body the simulator reads — Dataverse requests, the parts of a ``$batch``, bulk messages,
admin bodies — goes through :func:`loads` (or at least :func:`check_depth`), and the gateway
reads every body through :func:`cutover.sim.gateway.read_body` with a size cap:

* :data:`API_BODY_LIMIT` (64 MiB) for ``/api/data/v9.2/…`` and ``/data/…``: past it, 413;
* :data:`ADMIN_BODY_LIMIT` (1 MiB) for everything else (``/_sim/…``, the identity platform);
* :data:`MAX_DEPTH` (100) levels of nested arrays and objects: deeper is 400. OData's own
  reader stops at 100 as well (``ODataMessageQuotas.MaxNestingDepth``); no payload of the
  Web API needs a tenth of it.

``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259 §6) though Python's ``json``
reads them: :func:`loads` refuses them unless the caller asks for them (the admin surface
does, so that its field checks can name the field that carried one).

Refusals are :class:`JsonRefused` (a ``ValueError``) with the HTTP status to answer; the
callers put the message into their service's error shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate

API_BODY_LIMIT = 64 * 1024 * 1024
ADMIN_BODY_LIMIT = 1024 * 1024
MAX_DEPTH = 100

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKETS = {ord("["): 1, ord("{"): 1, ord("]"): 255, ord("}"): 255}  # 255 reads as -1 in a signed byte
_TO_STEPS = bytes(_BRACKETS.get(i, 0) for i in range(256))
_NOT_BRACKETS = bytes(i for i in range(256) if i not in _BRACKETS)
_CHUNK = 1 << 16


class JsonRefused(ValueError):
    """A body the simulator will not parse: ``status`` 400 (malformed, too deep) or 413 (too large)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(size: int | None, limit: int, what: str = "The request body") -> JsonRefused:
    """The 413 refusal of a body over ``limit`` bytes (``size`` when known)."""
    got = f" is {size:,} bytes;" if size is not None else " is too large;"
    return JsonRefused(413, f"{what}{got} the simulator accepts at most {limit:,} bytes ({_mib(limit)}).")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def nests_deeper_than(raw: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``raw`` nests ``[``/``{`` more than ``limit`` levels deep outside JSON strings.

    C-speed passes (strings removed by one regex, brackets kept by ``translate``, levels
    summed chunk by chunk, stopping at the first chunk past the limit), so even a 64 MiB
    body costs little. An unterminated string counts as not a string: the answer errs on the
    side of "too deep", never the other way."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    steps_all = _STRING.sub(b"", data).translate(_TO_STEPS, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(steps_all), _CHUNK):
        levels = list(accumulate(memoryview(steps_all[start : start + _CHUNK]).cast("b"), initial=depth))
        if max(levels) > limit:
            return True
        depth = levels[-1]
    return False


def check_depth(raw: bytes | str, limit: int = MAX_DEPTH, what: str = "The JSON body") -> None:
    """Raise a 400 :class:`JsonRefused` when ``raw`` nests deeper than ``limit``."""
    if nests_deeper_than(raw, limit):
        raise JsonRefused(400, f"{what} nests arrays and objects more than {limit} levels deep; the limit is {limit}.")


def _refuse_constant(name: str):
    raise JsonRefused(400, f"{name} is not valid JSON (RFC 8259 numbers are finite); send a number or null.")


def loads(
    raw: bytes | str,
    *,
    parse_float: Callable[[str], object] | None = None,
    allow_constants: bool = False,
    limit: int | None = None,
    what: str = "The request body",
) -> object:
    """``json.loads`` with the guards: size (413 past ``limit`` bytes, when given), depth
    (400 past :data:`MAX_DEPTH`), ``NaN``/``Infinity`` (400 unless ``allow_constants``), and
    anything ``json`` raises (400 with its text). Never a RecursionError."""
    if limit is not None and len(raw) > limit:
        raise too_large(len(raw), limit, what)
    check_depth(raw, what=what)
    try:
        return json.loads(
            raw,
            parse_float=parse_float,
            parse_constant=None if allow_constants else _refuse_constant,
        )
    except JsonRefused:
        raise
    except RecursionError:  # not reachable past check_depth; kept so a change there cannot crash
        raise JsonRefused(400, f"{what} nests too deeply to be read.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonRefused(400, f"{what} is not valid JSON: {exc}") from None
