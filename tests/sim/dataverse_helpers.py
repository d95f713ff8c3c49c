"""Small helpers for the Dataverse Web API contract tests.

They are written from Microsoft's documentation, independently of the simulator's own code
(the $batch bodies are built and the batch responses are parsed by hand here, never with
cutover.sim.batch), so a misunderstanding in the simulator cannot hide behind a shared helper.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

MILESTONES = "msdyn_contractlinescheduleofvalues"
MILESTONE_TYPE = "Microsoft.Dynamics.CRM.msdyn_contractlinescheduleofvalue"
MILESTONE_KEY = "msdyn_contractlinescheduleofvalueid"

NOT_READY, READY, CREATED, POSTED = 192350000, 192350001, 192350002, 192350003
FIXED_PRICE, TIME_AND_MATERIAL = 192350001, 192350000

NOT_FOUND = "0x80040217"
DUPLICATE = "0x80040237"
PRIVILEGE = "0x80040220"
URI_ERROR = "0x80060888"
BAD_PAYLOAD = "0x80048d19"
VERSION_MISMATCH = "0x80060882"
INVALID_ARGUMENT = "0x80040203"
NOT_SUPPORTED = "0x8004800d"
BATCH_TOO_LARGE = "0x8005f103"


def body(response) -> dict:
    """The JSON body with every non-integer number kept as exact Decimal text."""
    return json.loads(response.text, parse_float=Decimal)


def error_of(response, status: int, code: str | None = None) -> str:
    """Assert Dataverse's error shape {"error": {"code": "0x…", "message": …}}; return the message."""
    assert response.status_code == status, (response.status_code, response.text)
    data = json.loads(response.text)
    assert set(data) == {"error"}, data
    err = data["error"]
    assert re.fullmatch(r"0x[0-9a-fA-F]{8}", err["code"]), err
    if code is not None:
        assert err["code"].lower() == code.lower(), err
    assert isinstance(err["message"], str) and err["message"], err
    return err["message"]


def target(line: dict, name: str = "Milestone", amount: int = 1000, status: int = READY, **extra) -> dict:
    """A CreateMultiple / UpsertMultiple target (each target carries @odata.type)."""
    t = {
        "@odata.type": MILESTONE_TYPE,
        "msdyn_name": name,
        "msdyn_amount": amount,
        "msdyn_invoicedate": "2026-10-31",
        "msdyn_invoicestatus": status,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line['line_id']})",
    }
    t.update(extra)
    return t


def milestone_json(line: dict, amount_text: str, name: str = "Exact", status: int = READY) -> bytes:
    """A milestone body written as JSON text, so the amount reaches the server digit for digit."""
    return (
        f'{{"msdyn_name": {json.dumps(name)}, "msdyn_amount": {amount_text}, "msdyn_invoicedate": "2026-10-31", '
        f'"msdyn_invoicestatus": {int(status)}, "msdyn_ContractLineId@odata.bind": "/salesorderdetails({line["line_id"]})"}}'
    ).encode()


async def count(sim, entity_set: str, filter_: str | None = None) -> int:
    """Rows in a set (through the API: $count=true, $top=0)."""
    q = f"{entity_set}?$count=true&$top=0" + (f"&$filter={filter_}" if filter_ else "")
    r = await sim.dv("GET", q)
    assert r.status_code == 200, r.text
    return r.json()["@odata.count"]


DOCUMENTED = object()


async def bulk(sim, action: str, targets: list[dict], entity_set: str = MILESTONES, expect=DOCUMENTED):
    """POST set/Microsoft.Dynamics.CRM.<action> with {"Targets": [...]}; asserts the status unless
    expect is None (by default the documented one: UpsertMultiple 204 No Content, CreateMultiple 200)."""
    r = await sim.dv("POST", f"{entity_set}/Microsoft.Dynamics.CRM.{action}", json={"Targets": targets})
    if expect is DOCUMENTED:
        expect = 204 if action == "UpsertMultiple" else 200
    if expect is not None:
        assert r.status_code == expect, r.text
    return r


async def line_by_method(sim, method: int, index: int = 0) -> dict:
    """A seeded contract line with this billing method, found through the API."""
    r = await sim.dv(
        "GET",
        f"salesorderdetails?$filter=msdyn_billingmethod eq {method}&$orderby=salesorderdetailid",
    )
    row = r.json()["value"][index]
    return {
        "line_id": row["salesorderdetailid"],
        "contract_id": row["_salesorderid_value"],
        "project_id": row["_msdyn_project_value"],
        "row": row,
    }


async def walk(sim, first_url: str, page_size: int, headers: dict | None = None) -> list[dict]:
    """Follow @odata.nextLink to the end, resending the same maxpagesize preference; return the pages."""
    pages = []
    url = first_url
    while url:
        r = await sim.client.get(
            url, headers={**await sim.auth(), "Prefer": f"odata.maxpagesize={page_size}", **(headers or {})}
        )
        assert r.status_code == 200, r.text
        assert r.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        data = body(r)
        pages.append(data)
        url = data.get("@odata.nextLink")
        assert len(pages) < 10_000, "paging does not end"
    return pages


# --- $batch, by hand ---------------------------------------------------------------------------

CRLF = "\r\n"


def request_part(
    method: str, url: str, payload: dict | str | None = None, content_id: str | None = None, headers: dict | None = None
) -> str:
    """One application/http part, as in Microsoft's article "Execute batch operations using the Web API"."""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if payload is not None:
        lines.append("Content-Type: application/json; type=entry")
        lines += ["", payload if isinstance(payload, str) else json.dumps(payload)]
    else:
        lines += ["", ""]
    return CRLF.join(lines)


def changeset_part(parts: list[str], boundary: str = "changeset_BBB456") -> str:
    text = f"Content-Type: multipart/mixed; boundary={boundary}{CRLF}{CRLF}"
    for p in parts:
        text += f"--{boundary}{CRLF}{p}{CRLF}"
    return text + f"--{boundary}--"


def batch_body(parts: list[str], boundary: str = "batch_AAA123") -> tuple[bytes, str]:
    text = ""
    for p in parts:
        text += f"--{boundary}{CRLF}{p}{CRLF}"
    text += f"--{boundary}--{CRLF}"
    return text.encode(), f"multipart/mixed; boundary={boundary}"


async def post_batch(sim, parts: list[str], headers: dict | None = None, who=None):
    content, ctype = batch_body(parts)
    kw = {"who": who} if who else {}
    return await sim.dv("POST", "$batch", headers={"Content-Type": ctype, **(headers or {})}, content=content, **kw)


@dataclass
class Part:
    status: int
    headers: dict[str, str]
    body: str
    content_id: str | None = None

    def json(self):
        return json.loads(self.body, parse_float=Decimal)


@dataclass
class ChangesetResponse:
    parts: list[Part] = field(default_factory=list)


def _boundary(content_type: str) -> str:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    assert m, content_type
    return m.group(1)


def _split(text: str, boundary: str) -> list[str]:
    pieces = re.split(r"(?:^|\r\n)--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r\n|$)", text)
    # re.split with one group yields [pre, close?, part, close?, part, ..., '--', epilogue]
    parts, i = [], 1
    while i < len(pieces):
        closing = pieces[i]
        if closing:
            break
        parts.append(pieces[i + 1])
        i += 2
    return parts


def _head(text: str) -> tuple[dict[str, str], str]:
    head, _, rest = text.partition(CRLF + CRLF)
    headers = {}
    for line in head.split(CRLF):
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return headers, rest


def parse_batch_response(response) -> list[Part | ChangesetResponse]:
    """Parse a multipart/mixed batch response into parts (and change set responses)."""
    assert response.headers["content-type"].startswith("multipart/mixed"), response.headers
    items: list[Part | ChangesetResponse] = []
    for raw in _split(response.text, _boundary(response.headers["content-type"])):
        mime, rest = _head(raw)
        if mime["content-type"].startswith("multipart/mixed"):
            cs = ChangesetResponse()
            for inner in _split(rest, _boundary(mime["content-type"])):
                inner_mime, inner_rest = _head(inner)
                cs.parts.append(_http(inner_rest, inner_mime.get("content-id")))
            items.append(cs)
        else:
            items.append(_http(rest, mime.get("content-id")))
    return items


def _http(text: str, content_id: str | None) -> Part:
    status_line, _, rest = text.partition(CRLF)
    m = re.match(r"HTTP/1\.1 (\d{3})", status_line)
    assert m, status_line
    headers, payload = _head(rest) if not rest.startswith(CRLF) else ({}, rest[2:])
    return Part(int(m.group(1)), headers, payload, content_id)
