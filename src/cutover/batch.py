"""The OData ``$batch`` codec: many requests in one multipart/mixed body, and their answers.

Sources: OData 4.0 Part 1 §11.7 "Batch Requests" (multipart batch format), RFC 2046 §5.1
(multipart media type: boundaries, ``--boundary--`` close delimiter), RFC 7230 §3 (the
``application/http`` message inside each part); Dataverse's "Execute batch operations using
the Web API" for the limits.

Encoding (:func:`encode_batch`), one part per request, no changesets (each request stands
alone; with ``Prefer: odata.continue-on-error`` one bad record does not stop the others):

    --batch_<uuid>
    Content-Type: application/http
    Content-Transfer-Encoding: binary
    Content-ID: <n>                      (when given: ties the answer to the request)

    PATCH https://…/set(guid) HTTP/1.1
    Content-Type: application/json; type=entry

    {…json…}
    --batch_<uuid>--

- At most 1,000 requests per batch (Dataverse's limit); more is refused before sending.
- The boundary is chosen so that it occurs in no body (a random one is drawn again if it does).
- A header name or value with a line break is refused: it could forge a header or a request.

Decoding (:func:`decode_batch`): the answer's parts in order, each with its status, lower-case
headers, body and Content-ID; a changeset's answers (a nested multipart/mixed part) are
flattened in place. Line ends may be CRLF or bare LF. A part without a status line raises
ValueError (the caller reports the whole batch as unreadable). An error part's body is read by
:func:`cutover.odata.error_of`, the same reader as for a whole error answer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import odata

__all__ = ["MAX_BATCH_REQUESTS", "BatchPart", "BatchPartResponse", "decode_batch", "encode_batch"]

MAX_BATCH_REQUESTS = 1000
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


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
    """One request's answer inside a $batch answer."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    content_id: str | None

    def error(self) -> tuple[str | None, str]:
        """``(code, message)`` of an error answer (:func:`cutover.odata.error_of`)."""
        return odata.error_of(self.body, self.status)

    def entity_id(self) -> str | None:
        """The GUID in ``OData-EntityId`` (``…/set(guid)``) of a created or updated record, if any."""
        m = _ENTITY_ID.search(self.headers.get("odata-entityid", ""))
        return m.group(1) if m else None


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
        head, rest = data[: m.start()], data[m.end() :]
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
        raw = body[m.end() : nxt.start()]
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
