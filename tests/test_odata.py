"""cutover.odata: OData literals and query text built safely, and JSON with exact decimals."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from cutover import odata
from cutover.dataverse import DataverseClient
from cutover.domain import deterministic_id
from cutover.tokens import TokenSource
from cutover.transport import Transport
from tests.conftest import DV, WRITER, fixed_price_line


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("", "''"),
        (uuid.UUID("5f0c7a2e-1b2c-4d3e-8f90-a1b2c3d4e5f6"), "5f0c7a2e-1b2c-4d3e-8f90-a1b2c3d4e5f6"),
        ("5f0c7a2e-1b2c-4d3e-8f90-a1b2c3d4e5f6", "'5f0c7a2e-1b2c-4d3e-8f90-a1b2c3d4e5f6'"),
        (Decimal("1234.50"), "1234.50"),
        (Decimal("-0.01"), "-0.01"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.1000"), "0.1000"),
        (192350001, "192350001"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (dt.date(2026, 10, 31), "2026-10-31"),
        (dt.datetime(2026, 10, 31, 12, 0, 0), "2026-10-31T12:00:00Z"),
        (dt.datetime(2026, 10, 31, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-10-31T12:00:00Z"),
        (dt.datetime(2026, 10, 31, 12, 0, 0, 500000, tzinfo=dt.UTC), "2026-10-31T12:00:00.500000Z"),
        (
            odata.Enum("Microsoft.Dynamics.DataEntities.ProjTransStatus", "Invoiced"),
            "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'",
        ),
    ],
)
def test_quote_writes_odata_literals(value, literal):
    """OData ABNF literals: strings single-quoted with ' doubled; GUIDs bare (only from uuid.UUID);
    Decimal as exact text; dates YYYY-MM-DD; date-times in UTC with Z; enums Type'Member'."""
    assert odata.quote(value) == literal


@pytest.mark.parametrize("value", [0.1, float("nan"), Decimal("NaN"), Decimal("Infinity"), object(), b"bytes"])
def test_quote_refuses_what_has_no_exact_literal(value):
    """Money is never float (DESIGN, Conventions): a float is refused, not rounded into a query."""
    with pytest.raises((TypeError, ValueError), match="float|not a finite number|cannot write"):
        odata.quote(value)


def test_filter_helpers_compose_and_quote():
    """eq / comparisons / in / and / or / not build text with every value quoted and every
    field name checked; None clauses are skipped so optional conditions compose."""
    assert odata.filter_eq("msdyn_name", "O'Brien") == "msdyn_name eq 'O''Brien'"
    assert odata.filter_eq("_salesorderid_value", None) == "_salesorderid_value eq null"
    assert odata.compare("TransDate", "ge", dt.date(2026, 1, 1)) == "TransDate ge 2026-01-01"
    assert odata.in_("dataAreaId", ["usmf", "demf"]) == "dataAreaId in ('usmf','demf')"
    assert odata.and_("a eq 1", None, "", "b eq 2") == "(a eq 1) and (b eq 2)"
    assert odata.and_("a eq 1") == "a eq 1"
    assert odata.or_("a eq 1", "b eq 2") == "(a eq 1) or (b eq 2)"
    assert odata.not_("a eq 1") == "not (a eq 1)"
    assert odata.select(["a", "_b_value", "Nav/c"]) == "a,_b_value,Nav/c"
    assert odata.select("a") == "a"
    assert odata.orderby("a", "b desc") == "a,b desc"
    assert (
        odata.enum_literal("Microsoft.Dynamics.DataEntities.ProjTransStatus", "Invoiced")
        == "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"
    )
    assert (
        odata.filter_eq("TransStatus", odata.Enum("Ns.ProjTransStatus", "Invoiced"))
        == "TransStatus eq Ns.ProjTransStatus'Invoiced'"
    )


@pytest.mark.parametrize("bad", ["a eq 1", "a,b", "", "1abc", "a/", "a'--", "name desc"])
def test_field_names_are_checked(bad):
    """A field name cannot smuggle an expression into a query."""
    with pytest.raises(ValueError, match="not an OData property name"):
        odata.filter_eq(bad, 1)


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="has no OData form"):
        odata.in_("a", [])
    with pytest.raises(ValueError, match="unknown comparison operator 'like'"):
        odata.compare("a", "like", 1)
    with pytest.raises(ValueError, match="needs at least one non-empty clause"):
        odata.and_(None, "")
    with pytest.raises(ValueError, match="not an OData enum type name"):
        odata.enum_literal("Bad Type", "x")
    with pytest.raises(ValueError, match="direction must be asc or desc"):
        odata.orderby("a sideways")


def test_dumps_writes_decimals_as_exact_json_numbers():
    """Decimal → exact JSON number, never through float: 1234.50 stays 1234.50, and digits
    beyond float precision survive."""
    big = Decimal("12345678901234567890.123456789")
    text = odata.dumps(
        {
            "a": Decimal("1234.50"),
            "b": [Decimal("0.10"), big, 1, True, None],
            "c": 'ü "q"',
            "d": uuid.UUID(int=1),
            "e": dt.date(2026, 10, 31),
        }
    )
    assert (
        text
        == '{"a":1234.50,"b":[0.10,12345678901234567890.123456789,1,true,null],"c":"ü \\"q\\"","d":"00000000-0000-0000-0000-000000000001","e":"2026-10-31"}'
    )
    assert json.loads(text)["c"] == 'ü "q"'
    back = odata.loads(text)
    assert back["a"] == Decimal("1234.50") and str(back["a"]) == "1234.50"
    assert back["b"][1] == big and isinstance(back["b"][2], int)
    assert odata.dumps(Decimal("1E+3")) == "1000"
    with pytest.raises(ValueError, match="not a finite number"):
        odata.dumps({"x": Decimal("NaN")})
    with pytest.raises(TypeError, match="JSON object keys must be str, got int 1"):
        odata.dumps({1: "non-str key"})
    with pytest.raises(TypeError, match="JSON object keys must be str, got NoneType"):
        odata.dumps({"a": [{None: 1}]})


def test_loads_reads_every_fraction_as_decimal():
    assert odata.loads(b'{"v":[0.1,2,3.0e2]}') == {"v": [Decimal("0.1"), 2, Decimal("3.0e2")]}


async def test_quoted_values_cannot_change_a_query_on_the_simulator(sim):
    """Against the simulator's real OData parser: a value crafted to widen the filter matches
    only itself, and `in (...)` built by in_ is accepted."""

    class Tok(TokenSource):
        async def token(self, *, force_refresh=False):
            return await sim.token(*WRITER)

    dv = DataverseClient(Transport(f"{sim.client.base_url}{DV}", Tok(), environment="rehearsal", client=sim.client))
    line = fixed_price_line(sim.conn)
    ns = uuid.UUID(int=7)
    names = ["plain", "x' or msdyn_name ne 'y", "O'Brien"]
    recs = [
        {
            "msdyn_contractlinescheduleofvalueid": deterministic_id(n, ns),
            "msdyn_name": n,
            "msdyn_amount": Decimal("1.00"),
            "msdyn_invoicestatus": 192350001,
            "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line['line_id']})",
        }
        for n in names
    ]
    assert (await dv.bulk_upsert("msdyn_contractlinescheduleofvalues", "msdyn_contractlinescheduleofvalue", recs)).ok
    for n in names:
        rows = await dv.query_all(
            "msdyn_contractlinescheduleofvalues", select=["msdyn_name"], filter=odata.filter_eq("msdyn_name", n)
        )
        assert [r["msdyn_name"] for r in rows] == [n]
    rows = await dv.query_all(
        "msdyn_contractlinescheduleofvalues",
        select=["msdyn_name"],
        filter=odata.in_("msdyn_name", ["O'Brien", "plain"]),
    )
    assert sorted(r["msdyn_name"] for r in rows) == ["O'Brien", "plain"]
    rows = await dv.query_all(
        "msdyn_contractlinescheduleofvalues", select=["msdyn_name"], filter=odata.in_("msdyn_name", ["plain"])
    )
    assert [r["msdyn_name"] for r in rows] == ["plain"]


def test_dumps_refuses_a_float_anywhere_in_the_payload():
    """Money is never float (DESIGN, Conventions): a float amount nested in a record is refused
    with where it is, instead of being sent as its binary approximation."""
    with pytest.raises(TypeError, match=r"\$\.Targets\[1\]\.msdyn_amount"):
        odata.dumps({"Targets": [{"msdyn_amount": Decimal("1.10")}, {"msdyn_amount": 1.1}]})
    assert odata.dumps({"a": [Decimal("1.10"), 2, None, True]}) == '{"a":[1.10,2,null,true]}'


def test_key_and_name_segments_cannot_reshape_a_url():
    """Keys are a GUID or an alternate key with quoted values; names are one identifier: no
    argument can add a path segment or a query to a URL."""
    gid = "5F0C7A2E-1B2C-4D3E-8F90-A1B2C3D4E5F6"
    assert odata.key_segment(gid) == "(5f0c7a2e-1b2c-4d3e-8f90-a1b2c3d4e5f6)" == odata.key_segment(uuid.UUID(gid))
    assert (
        odata.key_segment({"ordernumber": "PRJC-1", "lineitemnumber": 2}) == "(ordernumber='PRJC-1',lineitemnumber=2)"
    )
    assert odata.key_segment({"name": "x')/evil"}) == "(name='x'')/evil')"
    assert odata.name_segment("msdyn_contractlinescheduleofvalues") == "msdyn_contractlinescheduleofvalues"
    with pytest.raises(ValueError, match="is not a GUID"):
        odata.key_segment("1)/accounts(2")
    with pytest.raises(ValueError, match="alternate key needs at least one column"):
        odata.key_segment({})
    for bad in ("accounts/evil", "accounts?$top=1", "", "a.b", None):
        with pytest.raises(ValueError, match="not an entity set, action or function name"):
            odata.name_segment(bad)


@pytest.mark.parametrize(
    ("body", "status", "reason", "expected"),
    [
        (
            b'{"error":{"code":"0x80040217","message":"Does Not Exist"}}',
            404,
            "Not Found",
            ("0x80040217", "Does Not Exist"),
        ),
        (b'{"error":{"code":"","message":"no code"}}', 400, "", (None, "no code")),
        (b'{"error":{"code":"X"}}', 400, "", ("X", "{'code': 'X'}")),
        (
            b'{"error":"invalid_client","error_description":"AADSTS7000215: bad secret"}',
            401,
            "",
            ("invalid_client", "AADSTS7000215: bad secret"),
        ),
        (b"", 503, "Service Unavailable", (None, "Service Unavailable")),
        (b"  ", 412, "", (None, "HTTP 412")),
        (b"<html>" + b"x" * 400, 502, "Bad Gateway", (None, "<html>" + "x" * 294)),
        (b'{"value":[]}', 400, "", (None, '{"value":[]}')),
    ],
)
def test_error_of_reads_every_error_answer_the_same_way(body, status, reason, expected):
    """One error-body reader for whole answers and $batch parts: OData's error object, the
    OAuth form, an empty body (the status line's phrase), anything else cut to 300 characters."""
    assert odata.error_of(body, status, reason) == expected
