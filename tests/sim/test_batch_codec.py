"""The simulator's ``$batch`` multipart codec (cutover.sim.batch).

Rules under test come from OData Version 4.0 Part 1: Protocol, §11.7 "Batch Requests"
(multipart/mixed body, change sets, Content-ID references, batch responses), RFC 2046 §5.1
(multipart delimiters: the line break before a delimiter belongs to the delimiter) and
Microsoft's Dataverse article "Execute batch operations using the Web API" (request and
response shapes, batchresponse_/changesetresponse_ boundaries).
"""

from __future__ import annotations

import json
import re

import pytest

from cutover.sim.batch import (
    MAX_BATCH_REQUESTS,
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    count_requests,
    parse_batch,
    render_batch,
)

ORG = "https://contoso.crm.dynamics.com"
CT = "multipart/mixed; boundary=batch_AAA123"
MILESTONE_1 = "2f1ae0a3-7b2e-5a55-9a3c-000000000001"

# Shaped like the Dataverse article's change-set example: a change set with two POSTs
# (Content-ID 1 and 2) and a PATCH addressed by the $1 reference, then a GET outside it.
# Note the article's own spelling "Content-Transfer-Encoding:binary" (no space).
DATAVERSE_BATCH = (
    "--batch_AAA123\r\n"
    "Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n"
    "\r\n"
    "--changeset_BBB456\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding:binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    f"POST {ORG}/api/data/v9.2/msdyn_contractlinescheduleofvalues HTTP/1.1\r\n"
    "Content-Type: application/json; type=entry\r\n"
    "\r\n"
    "{\r\n"
    '"msdyn_name":"Milestone 1 in batch",\r\n'
    '"msdyn_amount":1500.00,\r\n'
    '"msdyn_contract@odata.bind":"/salesorders(11111111-1111-1111-1111-111111111111)"\r\n'
    "}\r\n"
    "--changeset_BBB456\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding:binary\r\n"
    "Content-ID: 2\r\n"
    "\r\n"
    "POST /api/data/v9.2/msdyn_contractlinescheduleofvalues HTTP/1.1\r\n"
    "Content-Type: application/json; type=entry\r\n"
    "\r\n"
    '{"msdyn_name":"Milestone 2 in batch","msdyn_amount":250.5}\r\n'
    "--changeset_BBB456\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding:binary\r\n"
    "Content-ID: 3\r\n"
    "\r\n"
    "PATCH $1 HTTP/1.1\r\n"
    "Content-Type: application/json; type=entry\r\n"
    "If-Match: *\r\n"
    "\r\n"
    '{"msdyn_invoicestatus":192350001}\r\n'
    "--changeset_BBB456--\r\n"
    "\r\n"
    "--batch_AAA123\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding:binary\r\n"
    "\r\n"
    f"GET msdyn_contractlinescheduleofvalues({MILESTONE_1})?$select=msdyn_name HTTP/1.1\r\n"
    "Accept: application/json\r\n"
    "\r\n"
    "--batch_AAA123--\r\n"
).encode()


def single(request: str, *, boundary: str = "batch_AAA123", extra_part_headers: str = "") -> bytes:
    """A one-part batch around an embedded request written with CRLF."""
    return (
        f"--{boundary}\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f"{extra_part_headers}"
        "\r\n"
        f"{request}"
        f"\r\n--{boundary}--\r\n"
    ).encode()


def test_parses_dataverse_changeset_example_then_get():
    """Dataverse "Execute batch operations using the Web API" / OData 4.0 §11.7.3: a change set
    is a nested multipart/mixed part whose requests carry Content-IDs; a request outside it is
    an application/http part. Order is kept, URLs stay as written, headers are lower-cased."""
    items = parse_batch(DATAVERSE_BATCH, CT)

    assert len(items) == 2
    cs, get = items
    assert isinstance(cs, ChangeSet)
    assert [r.method for r in cs.requests] == ["POST", "POST", "PATCH"]
    assert [r.content_id for r in cs.requests] == ["1", "2", "3"]
    assert [r.url for r in cs.requests] == [
        f"{ORG}/api/data/v9.2/msdyn_contractlinescheduleofvalues",
        "/api/data/v9.2/msdyn_contractlinescheduleofvalues",
        "$1",
    ]
    first = cs.requests[0]
    assert first.headers == {"content-type": "application/json; type=entry"}
    assert json.loads(first.body) == {
        "msdyn_name": "Milestone 1 in batch",
        "msdyn_amount": 1500.00,
        "msdyn_contract@odata.bind": "/salesorders(11111111-1111-1111-1111-111111111111)",
    }
    # the CRLF before the next delimiter is not part of the body (RFC 2046 §5.1.1)
    assert first.body.endswith(b"}")
    assert cs.requests[1].body == b'{"msdyn_name":"Milestone 2 in batch","msdyn_amount":250.5}'
    patch = cs.requests[2]
    assert patch.headers == {"content-type": "application/json; type=entry", "if-match": "*"}
    assert patch.body == b'{"msdyn_invoicestatus":192350001}'

    assert isinstance(get, BatchRequest)
    assert get.method == "GET"
    assert get.url == f"msdyn_contractlinescheduleofvalues({MILESTONE_1})?$select=msdyn_name"
    assert get.headers == {"accept": "application/json"}
    assert get.body == b""
    assert get.content_id is None


def test_count_requests_counts_change_set_members():
    """Dataverse: a batch holds at most 1000 requests, and requests inside change sets count
    individually (OData 4.0 §11.7: each change-set part is one request)."""
    items = parse_batch(DATAVERSE_BATCH, CT)
    assert count_requests(items) == 4
    assert count_requests([]) == 0
    assert count_requests([ChangeSet(requests=[]), items[1], items[1]]) == 2
    assert MAX_BATCH_REQUESTS == 1000


def test_boundary_text_inside_json_is_body_not_delimiter():
    """RFC 2046 §5.1.1 / OData 4.0 §11.7.2: only a line that *starts* with --boundary is a
    delimiter; the same text inside a JSON string (not at line start) is body content."""
    payload = (
        '{"msdyn_name":"see --batch_AAA123 and --changeset_BBB456 and --batch_AAA123--",\r\n'
        ' "msdyn_description":"x --batch_AAA123\\r\\n--batch_AAA123"}'
    )
    body = (
        "--batch_AAA123\r\n"
        "Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n"
        "\r\n"
        "--changeset_BBB456\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        "POST msdyn_contractlinescheduleofvalues HTTP/1.1\r\n"
        "Content-Type: application/json\r\n"
        "\r\n"
        f"{payload}\r\n"
        "--changeset_BBB456--\r\n"
        "--batch_AAA123\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "GET WhoAmI HTTP/1.1\r\n"
        "\r\n"
        "--batch_AAA123--\r\n"
    ).encode()

    items = parse_batch(body, CT)

    assert len(items) == 2
    (post,) = items[0].requests
    assert post.body == payload.encode()
    assert json.loads(post.body)["msdyn_name"].endswith("--batch_AAA123--")
    assert items[1].url == "WhoAmI"


def test_bare_lf_line_endings_parse_like_crlf():
    """OData 4.0 §11.7.2 prescribes CRLF; the simulator is lenient like real servers and accepts
    bare LF, yielding the same requests (bodies keep their own bytes)."""
    lf_body = DATAVERSE_BATCH.replace(b"\r\n", b"\n")
    crlf = parse_batch(DATAVERSE_BATCH, CT)
    lf = parse_batch(lf_body, CT)

    assert len(lf) == 2
    assert [(r.method, r.url, r.headers, r.content_id) for r in lf[0].requests] == [
        (r.method, r.url, r.headers, r.content_id) for r in crlf[0].requests
    ]
    assert json.loads(lf[0].requests[0].body) == json.loads(crlf[0].requests[0].body)
    assert lf[0].requests[0].body.startswith(b"{\n")
    assert lf[0].requests[2].body == b'{"msdyn_invoicestatus":192350001}'
    assert (lf[1].method, lf[1].url, lf[1].body) == (crlf[1].method, crlf[1].url, b"")


def test_mixed_line_endings_in_one_batch():
    """RFC 2046 §5.1.1 delimiter recognition with CRLF in one part and bare LF in another."""
    body = (
        b"--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"DELETE accounts(1) HTTP/1.1\r\n\r\n"
        b"--batch_AAA123\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
        b"GET accounts HTTP/1.1\nAccept: application/json\n\n"
        b"--batch_AAA123--"
    )
    items = parse_batch(body, CT)
    assert [(r.method, r.url, r.body) for r in items] == [
        ("DELETE", "accounts(1)", b""),
        ("GET", "accounts", b""),
    ]
    assert items[1].headers == {"accept": "application/json"}


def test_requests_with_empty_bodies():
    """OData 4.0 §11.7.2: an embedded request is request line, headers, blank line, optional
    body. DELETE and GET carry none; the part may end right after the headers."""
    body = (
        "--batch_AAA123\r\n"
        "Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n"
        "\r\n"
        "--changeset_BBB456\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 7\r\n"
        "\r\n"
        f"DELETE msdyn_contractlinescheduleofvalues({MILESTONE_1}) HTTP/1.1\r\n"
        "\r\n"
        "--changeset_BBB456--\r\n"
        "--batch_AAA123\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "GET accounts HTTP/1.1\r\n"
        "Accept: application/json\r\n"  # no blank line: the CRLF belongs to the delimiter
        "--batch_AAA123\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "GET salesorders HTTP/1.1"  # no headers at all
        "\r\n--batch_AAA123--"
    ).encode()

    items = parse_batch(body, CT)

    (delete,) = items[0].requests
    assert (delete.method, delete.body, delete.headers, delete.content_id) == ("DELETE", b"", {}, "7")
    assert (items[1].url, items[1].headers, items[1].body) == ("accounts", {"accept": "application/json"}, b"")
    assert (items[2].url, items[2].headers, items[2].body) == ("salesorders", {}, b"")


def test_binary_body_is_kept_byte_for_byte():
    """OData 4.0 §11.7.2 Content-Transfer-Encoding: binary: the body is not decoded or
    re-wrapped; blank lines, CRLFs, non-UTF-8 bytes and boundary text that ends a line but
    does not start it (RFC 2046 §5.1.1) survive."""
    raw = b"\xff\xfe\x00line1\r\n\r\nline2\n--not-a-boundary\r\ntail --batch_AAA123\r\nx--batch_AAA123--\r\n"
    body = (
        b"--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"PUT accounts(1)/entityimage HTTP/1.1\r\nContent-Type: application/octet-stream\r\n\r\n"
        + raw
        + b"\r\n--batch_AAA123--\r\n"
    )
    (put,) = parse_batch(body, CT)
    assert put.body == raw
    assert put.headers == {"content-type": "application/octet-stream"}


def test_preamble_epilogue_quoted_boundary_and_padding():
    """RFC 2046 §5.1.1: text before the first delimiter and after the close delimiter is
    ignored, the boundary parameter may be quoted, and delimiter lines may carry trailing
    whitespace (transport padding)."""
    body = (
        b"This is a preamble.\r\n"
        b"--batch_AAA123  \r\n"
        b"content-type: application/http\r\n"
        b"content-transfer-encoding: binary\r\n\r\n"
        b"GET accounts?$top=1 HTTP/1.1\r\n\r\n"
        b"--batch_AAA123--\t\r\n"
        b"epilogue --batch_AAA123\r\n--batch_AAA123\r\nignored"
    )
    items = parse_batch(body, 'Multipart/Mixed; charset=utf-8; Boundary="batch_AAA123"')
    assert [(r.method, r.url) for r in items] == [("GET", "accounts?$top=1")]


def test_close_delimiter_only_is_an_empty_batch():
    """RFC 2046 §5.1.1: a multipart whose close delimiter is its only delimiter has no parts."""
    assert parse_batch(b"--batch_AAA123--\r\n", CT) == []


def test_content_id_in_embedded_request_headers_is_accepted():
    """OData 4.0 §11.7.3 puts Content-ID in the MIME part headers; some older clients
    (WCF Data Services style) put it among the embedded request's headers. Both are read."""
    body = (
        b"--batch_AAA123\r\n"
        b"Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n\r\n"
        b"--changeset_BBB456\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n"
        b"POST accounts HTTP/1.1\r\n"
        b"Content-ID: 42\r\n"
        b"Content-Type: application/json\r\n\r\n"
        b'{"name":"A"}\r\n'
        b"--changeset_BBB456--\r\n"
        b"--batch_AAA123--\r\n"
    )
    (cs,) = parse_batch(body, CT)
    assert cs.requests[0].content_id == "42"
    assert cs.requests[0].body == b'{"name":"A"}'


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed", "multipart/mixed; charset=utf-8", 'multipart/mixed; boundary=""', ""],
)
def test_missing_boundary_parameter_is_rejected(content_type):
    """OData 4.0 §11.7.1: the batch request's Content-Type is multipart/mixed with a boundary
    parameter; without it the body cannot be split."""
    with pytest.raises(BatchFormatError) as err:
        parse_batch(DATAVERSE_BATCH, content_type)
    assert "boundary" in str(err.value)


def test_non_multipart_content_type_is_rejected():
    """OData 4.0 §11.7.1: $batch bodies are multipart/mixed (JSON batch is not supported by
    the Dataverse endpoint the simulator stands in for)."""
    with pytest.raises(BatchFormatError) as err:
        parse_batch(b"{}", "application/json")
    assert "application/json" in str(err.value)
    assert "multipart/mixed" in str(err.value)


def test_boundary_mismatch_is_reported():
    """RFC 2046 §5.1.1: delimiter lines must use the boundary declared in the Content-Type."""
    with pytest.raises(BatchFormatError) as err:
        parse_batch(DATAVERSE_BATCH, "multipart/mixed; boundary=batch_ZZZ")
    assert "--batch_ZZZ" in str(err.value)
    assert "no delimiter" in str(err.value)


def test_unterminated_batch_is_rejected():
    """RFC 2046 §5.1.1 / OData 4.0 §11.7.2: the body ends with the close delimiter
    --boundary--; a truncated body is an error, not a shorter batch."""
    truncated = DATAVERSE_BATCH[: DATAVERSE_BATCH.rindex(b"--batch_AAA123--")]
    with pytest.raises(BatchFormatError) as err:
        parse_batch(truncated, CT)
    assert "not terminated" in str(err.value)
    assert "'--batch_AAA123--'" in str(err.value)


def test_unterminated_change_set_is_rejected():
    """RFC 2046 §5.1.1 applies to the nested change-set multipart too (OData 4.0 §11.7.3)."""
    body = DATAVERSE_BATCH.replace(b"--changeset_BBB456--\r\n", b"")
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    assert "change set in batch part 1" in str(err.value)
    assert "'--changeset_BBB456--'" in str(err.value)


def test_get_inside_change_set_is_rejected():
    """OData 4.0 §11.7.3 / Dataverse: change sets hold only data-modifying requests; a GET
    inside one is an error that names the part."""
    body = DATAVERSE_BATCH.replace(b"PATCH $1 HTTP/1.1", b"GET $1 HTTP/1.1")
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    message = str(err.value)
    assert "batch part 1, change set part 3" in message
    assert "GET" in message
    assert "change set" in message


def test_nested_change_set_is_rejected():
    """OData 4.0 §11.7.3: change sets cannot contain other change sets."""
    body = (
        b"--batch_AAA123\r\n"
        b"Content-Type: multipart/mixed; boundary=changeset_BBB456\r\n\r\n"
        b"--changeset_BBB456\r\n"
        b"Content-Type: multipart/mixed; boundary=changeset_CCC\r\n\r\n"
        b"--changeset_CCC--\r\n"
        b"--changeset_BBB456--\r\n"
        b"--batch_AAA123--\r\n"
    )
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    assert "batch part 1, change set part 1" in str(err.value)
    assert "cannot be nested" in str(err.value)


def test_duplicate_content_id_in_change_set_is_rejected():
    """OData 4.0 §11.7.3: Content-ID values are unique within the change set, else $n
    references would be ambiguous."""
    body = DATAVERSE_BATCH.replace(b"Content-ID: 2", b"Content-ID: 1")
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    assert "change set part 2" in str(err.value)
    assert "'1'" in str(err.value)


def test_part_without_request_line_is_rejected():
    """OData 4.0 §11.7.2: an application/http part holds a request line 'METHOD URL HTTP/1.1'."""
    body = (
        b"--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"GET accounts HTTP/1.1\r\n\r\n"
        b"--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"--batch_AAA123--\r\n"
    )
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    assert "batch part 2 has no request line" in str(err.value)


def test_garbage_request_line_is_rejected():
    """OData 4.0 §11.7.2: the request line is 'METHOD URL HTTP/1.1'; anything else is named."""
    with pytest.raises(BatchFormatError) as err:
        parse_batch(single("{not a request}\r\n"), CT)
    assert "batch part 1 has no request line" in str(err.value)
    assert "{not a request}" in str(err.value)


def test_empty_mime_part_is_rejected():
    """RFC 2046 / OData 4.0 §11.7.2: every batch part has a Content-Type; two delimiters in a
    row give an empty part, which is an error naming the part."""
    body = (
        b"--batch_AAA123\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"GET accounts HTTP/1.1\r\n\r\n"
        b"--batch_AAA123\r\n"
        b"--batch_AAA123--\r\n"
    )
    with pytest.raises(BatchFormatError) as err:
        parse_batch(body, CT)
    assert "batch part 2 is empty" in str(err.value)


def test_part_without_content_type_and_wrong_encoding_are_rejected():
    """OData 4.0 §11.7.2: a part is application/http with Content-Transfer-Encoding: binary
    (or a multipart/mixed change set)."""
    no_ct = b"--batch_AAA123\r\nContent-ID: 1\r\n\r\nGET accounts HTTP/1.1\r\n--batch_AAA123--"
    with pytest.raises(BatchFormatError) as err:
        parse_batch(no_ct, CT)
    assert "batch part 1 has no Content-Type" in str(err.value)

    b64 = single("R0VUIGFjY291bnRzIEhUVFAvMS4x").replace(
        b"Content-Transfer-Encoding: binary", b"Content-Transfer-Encoding: base64"
    )
    with pytest.raises(BatchFormatError) as err:
        parse_batch(b64, CT)
    assert "base64" in str(err.value)

    text_part = single("GET accounts HTTP/1.1\r\n").replace(b"application/http", b"text/plain")
    with pytest.raises(BatchFormatError) as err:
        parse_batch(text_part, CT)
    assert "'text/plain'" in str(err.value)


# --------------------------------------------------------------------------- rendering


def naive_split(body: bytes, boundary: str) -> list[bytes]:
    """How simple clients (e.g. the Dataverse JS sample library) read a batch response: split
    on '--boundary', drop the preamble and what follows the close delimiter."""
    chunks = body.split(b"--" + boundary.encode())
    assert chunks[0] == b""  # nothing before the first delimiter
    assert chunks[-1] == b"--\r\n"  # the close delimiter ends the body
    return [c.removeprefix(b"\r\n").removesuffix(b"\r\n") for c in chunks[1:-1]]


def read_http_part(part: bytes) -> tuple[dict[str, str], int, str, dict[str, str], bytes]:
    """Split an application/http part into MIME headers, status, reason, headers and body."""
    mime, _, http = part.partition(b"\r\n\r\n")
    head, _, body = http.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    m = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.*)", status_line)
    assert m, status_line
    mime_headers = dict(line.split(": ", 1) for line in mime.decode().split("\r\n"))
    headers = dict(line.split(": ", 1) for line in header_lines)
    return mime_headers, int(m.group(1)), m.group(2), headers, body


def boundary_of(content_type: str) -> str:
    m = re.fullmatch(r"multipart/mixed; boundary=(\S+)", content_type)
    assert m, content_type
    return m.group(1)


def test_render_batch_shape_matches_dataverse_response():
    """Dataverse "Execute batch operations using the Web API" (response example) / OData 4.0
    §11.7.4: the response is multipart/mixed with boundary batchresponse_<id>; a change set
    answers as a nested multipart/mixed (changesetresponse_<id>) whose parts echo the
    request Content-IDs; each part carries 'HTTP/1.1 <code> <reason>'."""
    entity = f"{ORG}/api/data/v9.2/msdyn_contractlinescheduleofvalues({MILESTONE_1})"
    get_body = json.dumps({"msdyn_name": "M1", "note": "--batchresponse_ in text"}).encode()
    body, content_type = render_batch(
        [
            [
                BatchResponse(204, {"OData-Version": "4.0", "OData-EntityId": entity}, b"", content_id="1"),
                BatchResponse(204, {"OData-Version": "4.0"}, b"", content_id="2"),
                BatchResponse(204, {"OData-Version": "4.0"}, b"", content_id="3"),
            ],
            BatchResponse(200, {"Content-Type": "application/json; odata.metadata=minimal"}, get_body),
            BatchResponse(
                429,
                {"Retry-After": "17", "Content-Type": "application/json"},
                b'{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit"}}',
            ),
        ]
    )

    batch_boundary = boundary_of(content_type)
    assert re.fullmatch(r"batchresponse_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", batch_boundary)
    assert body.startswith(f"--{batch_boundary}\r\n".encode())
    assert body.endswith(f"--{batch_boundary}--\r\n".encode())
    # CRLF throughout: no bare LF outside the bodies (none of these bodies has a newline)
    assert body.count(b"\n") == body.count(b"\r\n")

    cs_part, get_part, throttled = naive_split(body, batch_boundary)

    cs_mime, _, cs_inner = cs_part.partition(b"\r\n\r\n")
    m = re.fullmatch(rb"Content-Type: multipart/mixed; boundary=(changesetresponse_[0-9a-f-]{36})", cs_mime)
    assert m, cs_mime
    cs_boundary = m.group(1).decode()
    assert cs_boundary != batch_boundary
    responses = [read_http_part(p) for p in naive_split(cs_inner + b"\r\n", cs_boundary)]
    assert [(mh["Content-ID"], status, reason) for mh, status, reason, _, _ in responses] == [
        ("1", 204, "No Content"),
        ("2", 204, "No Content"),
        ("3", 204, "No Content"),
    ]
    first_mime, _, _, first_headers, first_body = responses[0]
    assert first_mime == {
        "Content-Type": "application/http",
        "Content-Transfer-Encoding": "binary",
        "Content-ID": "1",
    }
    assert first_headers == {"OData-Version": "4.0", "OData-EntityId": entity}
    assert first_body == b""

    mime, status, reason, headers, payload = read_http_part(get_part)
    assert mime == {"Content-Type": "application/http", "Content-Transfer-Encoding": "binary"}
    assert (status, reason) == (200, "OK")
    assert headers == {"Content-Type": "application/json; odata.metadata=minimal"}
    assert json.loads(payload) == {"msdyn_name": "M1", "note": "--batchresponse_ in text"}

    _, status, reason, headers, payload = read_http_part(throttled)
    assert (status, reason) == (429, "Too Many Requests")
    assert headers["Retry-After"] == "17"
    assert json.loads(payload)["error"]["code"] == "0x80072322"


def test_render_exact_bytes_of_single_response():
    """OData 4.0 §11.7.4 / RFC 2046 §5.1.1: part headers, blank line, status line, headers,
    blank line, body, then CRLF + delimiter; the close delimiter ends the body."""
    body, content_type = render_batch([BatchResponse(412, {"OData-Version": "4.0"}, b"{}", content_id="9")])
    b = boundary_of(content_type)
    assert (
        body
        == (
            f"--{b}\r\n"
            "Content-Type: application/http\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            "Content-ID: 9\r\n"
            "\r\n"
            "HTTP/1.1 412 Precondition Failed\r\n"
            "OData-Version: 4.0\r\n"
            "\r\n"
            "{}\r\n"
            f"--{b}--\r\n"
        ).encode()
    )


def test_render_unknown_status_and_fresh_boundaries():
    """HTTP/1.1 status-line grammar allows an empty reason phrase for codes without one; each
    response gets its own random boundary (Dataverse uses batchresponse_<guid>)."""
    body1, ct1 = render_batch([BatchResponse(599, {}, b"")])
    _, ct2 = render_batch([])
    assert b"\r\nHTTP/1.1 599 \r\n" in body1
    assert ct1 != ct2
    empty, ct_empty = render_batch([])
    assert empty == f"--{boundary_of(ct_empty)}--\r\n".encode()


def test_render_rejects_header_injection():
    """HTTP/1.1 header fields cannot contain line breaks; rendering one would forge parts."""
    with pytest.raises(ValueError, match="contains a line break"):
        render_batch([BatchResponse(200, {"X-Evil": "a\r\n--batchresponse_x"}, b"")])


def test_rendered_request_style_round_trip_through_parser():
    """OData 4.0 §11.7: requests and responses share the multipart framing. Rendering a
    response and swapping the status line for a request line parses back with the same parts,
    Content-IDs and bodies - the framing of render_batch is what parse_batch reads."""
    body, content_type = render_batch(
        [
            [
                BatchResponse(201, {"Content-Type": "application/json"}, b'{"a":1}', content_id="1"),
                BatchResponse(204, {}, b"", content_id="2"),
            ],
            BatchResponse(200, {"Content-Type": "application/json"}, b'{"value":[]}'),
        ]
    )
    as_requests = re.sub(rb"HTTP/1\.1 (\d{3}) [^\r\n]*", rb"POST status\1 HTTP/1.1", body)
    items = parse_batch(as_requests, content_type)
    assert len(items) == 2
    assert [(r.url, r.content_id, r.body) for r in items[0].requests] == [
        ("status201", "1", b'{"a":1}'),
        ("status204", "2", b""),
    ]
    assert (items[1].url, items[1].headers, items[1].body) == (
        "status200",
        {"content-type": "application/json"},
        b'{"value":[]}',
    )
