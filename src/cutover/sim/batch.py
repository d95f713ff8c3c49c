"""The multipart codec behind the simulated Dataverse Web API ``$batch`` endpoint.

Pure functions over bytes: :func:`parse_batch` turns a ``multipart/mixed`` request body into
requests and change sets, :func:`render_batch` turns the results back into a
``multipart/mixed`` response body shaped the way Dataverse answers. Executing the requests
(resolving ``$<Content-ID>`` references, atomic change sets, ``odata.continue-on-error``,
the 1000-request limit) is the route's job, not this module's.

Format (OData v4.0 Part 1 §11.7 "Batch Requests"; RFC 2046 §5.1 multipart; Dataverse
"Execute batch operations using the Web API"):

* The body is split on delimiter lines ``--<boundary>`` that start a line; the line ending
  *before* a delimiter belongs to the delimiter, not to the preceding part (RFC 2046 §5.1.1),
  so a part's body is kept byte for byte. ``--<boundary>--`` closes the multipart; text before
  the first delimiter (preamble) and after the close (epilogue) is ignored. CRLF is the
  standard line ending; bare LF is accepted too. Boundary-like text that does not start a
  line (e.g. inside a JSON string) is body text.
* An embedded request body nested deeper than :data:`cutover.sim.jsonguard.MAX_DEPTH` is a
  format error (the service's JSON reader would otherwise recurse on it).
* Each part is either ``Content-Type: application/http`` with
  ``Content-Transfer-Encoding: binary`` and an embedded HTTP request, or a change set
  ``Content-Type: multipart/mixed; boundary=...`` whose parts are embedded requests, each
  normally carrying a ``Content-ID``. Change sets hold no GET requests and do not nest.

The codec shares no code with cutover's clients (DESIGN.md: the simulator stands in for
Microsoft's servers).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus

from .jsonguard import MAX_DEPTH, nests_deeper_than

__all__ = [
    "MAX_BATCH_REQUESTS",
    "BatchFormatError",
    "BatchRequest",
    "BatchResponse",
    "ChangeSet",
    "count_requests",
    "parse_batch",
    "parse_media_type",
    "render_batch",
]

#: Dataverse accepts at most this many requests in one ``$batch`` (change set members count).
MAX_BATCH_REQUESTS = 1000

_IDENTITY_ENCODINGS = {"binary", "8bit", "7bit"}
_REQUEST_LINE = re.compile(
    rb"^(?P<method>[A-Za-z]+)[ \t]+(?P<url>\S(?:.*?\S)?)(?:[ \t]+(?P<version>HTTP/\d+(?:\.\d+)?))?[ \t]*$"
)
_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class BatchFormatError(ValueError):
    """The ``$batch`` body or its Content-Type is malformed; ``str(e)`` says what and where."""


@dataclass
class BatchRequest:
    """One embedded HTTP request of a batch."""

    method: str
    url: str  # as written in the part (not resolved): absolute, server-relative, relative or $n
    headers: dict[str, str]  # names lower-cased
    body: bytes
    content_id: str | None


@dataclass
class ChangeSet:
    """Requests that must succeed or fail together (one database transaction)."""

    requests: list[BatchRequest] = field(default_factory=list)


@dataclass
class BatchResponse:
    """One embedded HTTP response to render into the batch response."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


# --------------------------------------------------------------------------- parsing


def parse_media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased media type and parameters.

    Parameter names are lower-cased; quoted values are unquoted.
    """
    value = content_type or ""
    media, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(";" + rest):
        raw = m.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[m.group(1).lower()] = raw
    return media.strip().lower(), params


def _boundary_of(content_type: str, what: str) -> str:
    media, params = parse_media_type(content_type)
    if media != "multipart/mixed":
        raise BatchFormatError(
            f"{what} has Content-Type {content_type.strip()!r}; expected 'multipart/mixed; boundary=...'"
        )
    boundary = params.get("boundary", "").strip()
    if not boundary:
        raise BatchFormatError(
            f"{what} Content-Type {content_type.strip()!r} has no boundary parameter; "
            "send 'multipart/mixed; boundary=batch_<id>'"
        )
    if len(boundary) > 70:
        raise BatchFormatError(f"{what} boundary is {len(boundary)} characters long; at most 70 are allowed")
    try:
        boundary.encode("ascii")
    except UnicodeEncodeError:
        raise BatchFormatError(f"{what} boundary {boundary!r} is not ASCII") from None
    return boundary


def _split_multipart(data: bytes, boundary: str, what: str) -> list[bytes]:
    """Return the parts between ``--boundary`` delimiter lines (RFC 2046 §5.1.1)."""
    delim = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("ascii")) + rb"(?P<close>--)?[ \t]*(?=\r?\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for m in delim.finditer(data):
        if start is not None:
            chunk = data[start : m.start()]
            # the line ending after the delimiter line is not part of the body part
            if chunk.startswith(b"\r\n"):
                chunk = chunk[2:]
            elif chunk.startswith(b"\n"):
                chunk = chunk[1:]
            parts.append(chunk)
        if m.group("close"):
            return parts
        start = m.end()
    if start is None:
        raise BatchFormatError(
            f"{what} contains no delimiter line '--{boundary}'; the boundary in the body must match "
            "the boundary parameter of its Content-Type"
        )
    raise BatchFormatError(f"{what} is not terminated: the closing delimiter '--{boundary}--' is missing")


def _read_lines(data: bytes, pos: int):
    """Yield (line_without_eol, next_pos) from pos; accepts CRLF and bare LF."""
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            yield data[pos:], n
            return
        line = data[pos:nl]
        if line.endswith(b"\r"):
            line = line[:-1]
        yield line, nl + 1
        pos = nl + 1


def _decode_header_line(line: bytes) -> str:
    try:
        return line.decode("ascii")
    except UnicodeDecodeError:
        # header values are ISO-8859-1 by HTTP tradition; never fail on them
        return line.decode("latin-1")


def _looks_like_request_line(line: bytes) -> bool:
    m = _REQUEST_LINE.match(line)
    return m is not None and m.group("version") is not None


def _read_headers(
    data: bytes, pos: int, what: str, *, stop_at_request_line: bool = False
) -> tuple[dict[str, str], int]:
    """Read header lines up to the first blank line; return (headers, position of the body).

    With stop_at_request_line, a line that looks like an HTTP request line (``METHOD URL
    HTTP/1.1``) or a delimiter (``--...``) also ends the headers: lenience for clients that
    omit the blank line after the MIME part headers.
    """
    headers: dict[str, str] = {}
    last: str | None = None
    for line, nxt in _read_lines(data, pos):
        if line.strip(b" \t") == b"":
            return headers, nxt
        if line[:1] in (b" ", b"\t") and last is not None:  # obsolete line folding
            headers[last] = (headers[last] + " " + _decode_header_line(line).strip()).strip()
            pos = nxt
            continue
        if stop_at_request_line and (line.startswith(b"--") or _looks_like_request_line(line)):
            return headers, pos
        if b":" not in line:
            text = _decode_header_line(line)
            raise BatchFormatError(f"{what}: header line {text[:80]!r} has no ':'; headers end at the first blank line")
        name, _, value = _decode_header_line(line).partition(":")
        name = name.strip().lower()
        if not name:
            raise BatchFormatError(f"{what}: header line {_decode_header_line(line)[:80]!r} has no header name")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        last = name
        pos = nxt
    return headers, len(data)


def _parse_http_request(data: bytes, what: str, part_headers: dict[str, str]) -> BatchRequest:
    """Parse an embedded request (after the MIME part headers) of an application/http part."""
    encoding = part_headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise BatchFormatError(f"{what} has Content-Transfer-Encoding {encoding!r}; only 'binary' is supported")
    pos = 0
    request_line: bytes | None = None
    for line, nxt in _read_lines(data, 0):
        if line.strip() == b"":  # tolerate extra blank lines before the request line
            pos = nxt
            continue
        request_line, pos = line, nxt
        break
    if request_line is None:
        raise BatchFormatError(
            f"{what} has no request line; expected 'METHOD URL HTTP/1.1' after the part headers and a blank line"
        )
    m = _REQUEST_LINE.match(request_line)
    if m is None:
        shown = request_line[:120].decode("latin-1")
        raise BatchFormatError(f"{what} has no request line: {shown!r} is not of the form 'METHOD URL HTTP/1.1'")
    version = m.group("version")
    if version is not None and not version.startswith(b"HTTP/1."):
        raise BatchFormatError(f"{what} uses {version.decode()}; embedded requests must be HTTP/1.1")
    headers, body_pos = _read_headers(data, pos, what)
    try:
        url = m.group("url").decode("utf-8")
    except UnicodeDecodeError:
        raise BatchFormatError(f"{what}: the request URL is not valid UTF-8") from None
    content_id = part_headers.get("content-id") or headers.get("content-id") or None
    body = data[body_pos:]
    if nests_deeper_than(body, MAX_DEPTH):
        raise BatchFormatError(
            f"{what}: the request body nests arrays and objects more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}"
        )
    return BatchRequest(
        method=m.group("method").decode("ascii").upper(),
        url=url,
        headers=headers,
        body=body,
        content_id=content_id.strip() if content_id else None,
    )


def _parse_part(raw: bytes, what: str, *, in_changeset: bool) -> BatchRequest | ChangeSet:
    if raw.strip() == b"":
        raise BatchFormatError(f"{what} is empty; every part needs a Content-Type header and a request")
    part_headers, body_pos = _read_headers(raw, 0, what, stop_at_request_line=True)
    ctype = part_headers.get("content-type")
    if ctype is None:
        raise BatchFormatError(
            f"{what} has no Content-Type header; expected 'application/http' or "
            "'multipart/mixed; boundary=changeset_<id>'"
        )
    media, _ = parse_media_type(ctype)
    if media == "application/http":
        return _parse_http_request(raw[body_pos:], what, part_headers)
    if media == "multipart/mixed":
        if in_changeset:
            raise BatchFormatError(f"{what} is a change set inside a change set; change sets cannot be nested")
        boundary = _boundary_of(ctype, what)
        inner = _split_multipart(raw[body_pos:], boundary, f"change set in {what}")
        requests: list[BatchRequest] = []
        seen: dict[str, int] = {}
        for j, inner_raw in enumerate(inner, start=1):
            inner_what = f"{what}, change set part {j}"
            req = _parse_part(inner_raw, inner_what, in_changeset=True)
            assert isinstance(req, BatchRequest)
            if req.method == "GET":
                raise BatchFormatError(
                    f"{inner_what} is a GET request; a change set may contain only "
                    "POST, PATCH, PUT or DELETE requests - move the GET outside the change set"
                )
            if req.content_id is not None:
                if req.content_id in seen:
                    raise BatchFormatError(
                        f"{inner_what} repeats Content-ID {req.content_id!r} of change set part "
                        f"{seen[req.content_id]}; Content-IDs must be unique within a change set"
                    )
                seen[req.content_id] = j
            requests.append(req)
        return ChangeSet(requests=requests)
    raise BatchFormatError(
        f"{what} has Content-Type {ctype!r}; expected 'application/http' or 'multipart/mixed; boundary=changeset_<id>'"
    )


def parse_batch(body: bytes, content_type: str) -> list[BatchRequest | ChangeSet]:
    """Parse a ``$batch`` request body into requests and change sets, in order.

    ``content_type`` is the request's Content-Type header (``multipart/mixed; boundary=...``).
    Raises :class:`BatchFormatError` with a message naming the part that is wrong.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("parse_batch expects the body as bytes")
    boundary = _boundary_of(content_type or "", "the $batch request")
    raw_parts = _split_multipart(bytes(body), boundary, "the $batch body")
    items: list[BatchRequest | ChangeSet] = []
    for i, raw in enumerate(raw_parts, start=1):
        items.append(_parse_part(raw, f"batch part {i}", in_changeset=False))
    return items


def count_requests(items) -> int:
    """Total number of requests, counting each member of a change set."""
    total = 0
    for item in items:
        if isinstance(item, ChangeSet):
            total += len(item.requests)
        else:
            total += 1
    return total


# --------------------------------------------------------------------------- rendering


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {int(status)} {reason}".encode("ascii")


def _header_lines(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r} contains a line break")
        out += text.encode("latin-1") + b"\r\n"
    return bytes(out)


def _render_response_part(resp: BatchResponse, boundary: bytes) -> bytes:
    part_headers = b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if resp.content_id is not None:
        part_headers += f"Content-ID: {resp.content_id}\r\n".encode("latin-1")
    return (
        b"--"
        + boundary
        + b"\r\n"
        + part_headers
        + b"\r\n"
        + _status_line(resp.status)
        + b"\r\n"
        + _header_lines(resp.headers)
        + b"\r\n"
        + bytes(resp.body)
        + b"\r\n"  # belongs to the next delimiter (RFC 2046 §5.1.1)
    )


def _new_boundary(prefix: str, bodies: list[bytes]) -> str:
    while True:
        candidate = f"{prefix}_{uuid.uuid4()}"
        marker = b"--" + candidate.encode("ascii")
        if not any(marker in b for b in bodies):
            return candidate


def render_batch(items: list[BatchResponse | list[BatchResponse]]) -> tuple[bytes, str]:
    """Render the batch response body and its Content-Type (multipart/mixed; boundary=batchresponse_<uuid>).

    A list renders as a changeset (nested multipart/mixed with boundary changesetresponse_<uuid>), each part with its Content-ID;
    a BatchResponse renders as a single application/http part with status line 'HTTP/1.1 <code> <reason>'.

    A change set that failed is answered by Dataverse with the single error response of the
    failing request, not a change set: pass that as a plain BatchResponse.
    """
    all_bodies = [bytes(r.body) for item in items for r in (item if isinstance(item, (list, tuple)) else [item])]
    batch_boundary = _new_boundary("batchresponse", all_bodies).encode("ascii")
    out = bytearray()
    for item in items:
        if isinstance(item, (list, tuple)):
            cs_boundary = _new_boundary("changesetresponse", [bytes(r.body) for r in item]).encode("ascii")
            out += b"--" + batch_boundary + b"\r\n"
            out += b"Content-Type: multipart/mixed; boundary=" + cs_boundary + b"\r\n\r\n"
            for resp in item:
                out += _render_response_part(resp, cs_boundary)
            out += b"--" + cs_boundary + b"--\r\n"
        elif isinstance(item, BatchResponse):
            out += _render_response_part(item, batch_boundary)
        else:
            raise TypeError(f"render_batch expects BatchResponse or a list of them, got {type(item).__name__}")
    out += b"--" + batch_boundary + b"--\r\n"
    return bytes(out), f"multipart/mixed; boundary={batch_boundary.decode('ascii')}"
