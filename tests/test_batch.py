"""The OData $batch codec (cutover.batch): multipart/mixed requests out, per-request answers in.

The codec is pure text; what the simulator does with a batch is tested in tests/sim and, through
the bulk engine, in test_bulk.py."""

from __future__ import annotations

import pytest

from cutover import odata
from cutover.batch import BatchPart, BatchPartResponse, decode_batch, encode_batch


def test_batch_encoding_is_multipart_mixed_with_one_request_per_part():
    """OData $batch: multipart/mixed parts of Content-Type application/http, binary transfer
    encoding, each an HTTP/1.1 request line, headers, blank line, body; closed by --boundary--."""
    body, ctype = encode_batch(
        [
            BatchPart(
                "PATCH",
                "https://org/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)",
                b'{"name":"A"}',
                content_id="1",
            ),
            BatchPart("GET", "https://org/api/data/v9.2/WhoAmI"),
        ],
        boundary="batch_x",
    )
    assert ctype == "multipart/mixed; boundary=batch_x"
    text = body.decode()
    assert text.startswith(
        "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPATCH https://org/api/data/v9.2/accounts("
    )
    assert '\r\n\r\n{"name":"A"}\r\n--batch_x\r\n' in text and text.endswith("--batch_x--\r\n")
    with pytest.raises(ValueError, match="at most 1000 requests, not 1001"):
        encode_batch([BatchPart("GET", "x")] * 1001)


def test_batch_answer_decoding_handles_changesets_and_errors():
    """A Dataverse batch answer (as documented) with a changeset and an error part decodes into
    per-request statuses, Content-IDs, headers and bodies, in order."""
    answer = (
        b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        b"--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: https://org/api/data/v9.2/tasks(aaaaaaaa-0000-0000-0000-000000000001)\r\n\r\n\r\n"
        b"--changesetresponse_2--\r\n"
        b"--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n{"error":{"code":"0x80040203","message":"bad --batchresponse_1 inside"}}\r\n'
        b"--batchresponse_1--\r\n"
    )
    parts = decode_batch(answer, "multipart/mixed; boundary=batchresponse_1")
    assert [(p.status, p.content_id) for p in parts] == [(204, "1"), (400, None)]
    assert parts[0].headers["odata-entityid"].endswith("0001)")
    assert odata.loads(parts[1].body)["error"]["code"] == "0x80040203"
    assert parts[0].entity_id() == "aaaaaaaa-0000-0000-0000-000000000001" and parts[1].entity_id() is None
    assert parts[1].error() == ("0x80040203", "bad --batchresponse_1 inside")


def test_batch_boundary_never_occurs_in_a_body_and_headers_cannot_be_forged():
    """A body that contains the proposed boundary gets another one; a header value with a line
    break (which could forge a header or a request) is refused."""
    body, ctype = encode_batch([BatchPart("POST", "https://org/x", b"--batch_x inside")], boundary="batch_x")
    boundary = ctype.split("boundary=")[1]
    assert boundary != "batch_x" and f"--{boundary}".encode() not in b"--batch_x inside"
    assert body.endswith(f"--{boundary}--\r\n".encode())
    with pytest.raises(ValueError, match="line break"):
        encode_batch([BatchPart("GET", "https://org/x", headers={"X-Note": "a\r\nAuthorization: Bearer x"})])


def test_batch_answer_without_a_boundary_or_a_status_line_is_refused():
    """An answer that cannot be read part by part is an error, never an empty list of answers."""
    with pytest.raises(ValueError, match="no multipart boundary"):
        decode_batch(b"--x\r\n", "application/json")
    broken = b"--b\r\nContent-Type: application/http\r\n\r\nnot a status line\r\n--b--\r\n"
    with pytest.raises(ValueError, match="no status line"):
        decode_batch(broken, "multipart/mixed; boundary=b")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error":{"code":"0x80040237","message":"A record with matching key values already exists."}}',
            ("0x80040237", "A record with matching key values already exists."),
        ),
        (b"", (None, "HTTP 412")),
        (b"<html>gateway</html>", (None, "<html>gateway</html>")),
    ],
)
def test_an_error_part_is_read_like_a_whole_error_answer(body, expected):
    """One error reader (cutover.odata.error_of) for whole answers and $batch parts."""
    assert BatchPartResponse(412, {}, body, "1").error() == expected == odata.error_of(body, 412)
