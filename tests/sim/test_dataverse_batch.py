"""Contract tests: the simulator's bulk actions and $batch behave as Microsoft documents them.

Sources (Microsoft Learn, Dataverse): "Use bulk operation messages" (CreateMultiple /
UpsertMultiple, Targets with @odata.type, at most 1000 targets suggested, one transaction),
"Execute batch operations using the Web API" (multipart/mixed bodies, change sets,
Content-ID references in URLs and bodies, "Handling errors" with and without
Prefer: odata.continue-on-error, at most 1000 requests), OData 4.0 Part 1 §11.7. The
multipart bodies are written by hand in tests/sim/dataverse_helpers.py, the way the article
shows them, and the responses are parsed there too (not with the simulator's codec).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.conftest import DV, READER, fixed_price_line, milestone_payload
from tests.sim.dataverse_helpers import (
    BAD_PAYLOAD,
    BATCH_TOO_LARGE,
    CRLF,
    DUPLICATE,
    FIXED_PRICE,
    INVALID_ARGUMENT,
    MILESTONE_KEY,
    MILESTONES,
    NOT_FOUND,
    NOT_SUPPORTED,
    PRIVILEGE,
    ChangesetResponse,
    Part,
    batch_body,
    body,
    bulk,
    changeset_part,
    count,
    error_of,
    line_by_method,
    parse_batch_response,
    post_batch,
    request_part,
    target,
)


@pytest.fixture
def line(sim) -> dict:
    return fixed_price_line(sim.conn)


def part_error(part: Part, status: int, code: str | None = None) -> str:
    assert part.status == status, (part.status, part.body)
    err = part.json()["error"]
    if code:
        assert err["code"] == code, err
    return err["message"]


# --- CreateMultiple / UpsertMultiple -------------------------------------------------------------


async def test_create_multiple_returns_the_ids_in_target_order(sim, line):
    """'Use bulk operation messages': CreateMultiple answers 200 with Ids, one per target, in order."""
    before = await count(sim, MILESTONES)
    chosen = str(uuid.uuid4())
    r = await bulk(
        sim,
        "CreateMultiple",
        [target(line, "first", 10), target(line, "second", 20, **{MILESTONE_KEY: chosen}), target(line, "third", 30)],
    )
    ids = r.json()["Ids"]
    assert len(ids) == 3 and ids[1] == chosen
    assert await count(sim, MILESTONES) == before + 3
    for key, name in zip(ids, ["first", "second", "third"]):
        assert body(await sim.dv("GET", f"{MILESTONES}({key})"))["msdyn_name"] == name


async def test_upsert_multiple_creates_then_updates(sim, line):
    """'Use bulk operation messages': UpsertMultiple creates targets that don't exist and updates those that do."""
    keys = [str(uuid.uuid4()) for _ in range(3)]
    await bulk(sim, "UpsertMultiple", [target(line, f"v1-{i}", 1, **{MILESTONE_KEY: k}) for i, k in enumerate(keys)])
    before = await count(sim, MILESTONES)
    r = await bulk(
        sim,
        "UpsertMultiple",
        [target(line, f"v2-{i}", 2, **{MILESTONE_KEY: k}) for i, k in enumerate(keys)] + [target(line, "new", 3)],
    )
    assert r.status_code == 204 and r.content == b""  # documented: UpsertMultiple answers 204 No Content
    assert await count(sim, MILESTONES) == before + 1
    rows = body(await sim.dv("GET", f"{MILESTONES}?$filter=startswith(msdyn_name,'v')&$orderby=msdyn_name"))["value"]
    assert [(row["msdyn_name"], row["msdyn_amount"]) for row in rows] == [(f"v2-{i}", Decimal(2)) for i in range(3)]


async def test_create_multiple_is_atomic_and_names_the_failing_target(sim, line):
    """'Use bulk operation messages': the operation is one transaction; one bad target fails the whole request and nothing is written."""
    before = await count(sim, MILESTONES)
    targets = [
        target(line, "ok 0"),
        target(line, "ok 1"),
        target(line, "bad", msdyn_invoicestatus=7),
        target(line, "ok 3"),
    ]
    r = await bulk(sim, "CreateMultiple", targets, expect=None)
    message = error_of(r, 400, INVALID_ARGUMENT)
    assert "CreateMultiple target 2" in message and "outside the valid range" in message
    assert await count(sim, MILESTONES) == before
    assert await count(sim, MILESTONES, "startswith(msdyn_name,'ok ')") == 0


async def test_create_multiple_with_an_existing_id_fails_whole_request_with_412(sim, line):
    """'Use bulk operation messages': CreateMultiple creates only; an id that exists fails the request (0x80040237)."""
    existing = (await bulk(sim, "CreateMultiple", [target(line, "existing")])).json()["Ids"][0]
    before = await count(sim, MILESTONES)
    r = await bulk(
        sim, "CreateMultiple", [target(line, "fresh"), target(line, "clash", **{MILESTONE_KEY: existing})], expect=None
    )
    assert "target 1" in error_of(r, 412, DUPLICATE)
    assert await count(sim, MILESTONES) == before
    assert body(await sim.dv("GET", f"{MILESTONES}({existing})"))["msdyn_name"] == "existing"


async def test_bulk_with_more_than_1000_targets_is_400(sim, line):
    """'Use bulk operation messages' (and DESIGN.md): at most 1000 targets per request; more is refused, nothing is written."""
    before = await count(sim, MILESTONES)
    r = await bulk(sim, "UpsertMultiple", [target(line, f"m{i}", 1) for i in range(1001)], expect=None)
    message = error_of(r, 400, INVALID_ARGUMENT)
    assert "at most 1000 targets" in message and "1001" in message
    assert await count(sim, MILESTONES) == before
    assert (await bulk(sim, "UpsertMultiple", [target(line, f"m{i}", 1) for i in range(1000)])).status_code == 204


async def test_bulk_target_without_odata_type_is_400(sim, line):
    """'Use bulk operation messages': each target must carry @odata.type; the error names the target."""
    before = await count(sim, MILESTONES)
    bare = target(line, "no type")
    del bare["@odata.type"]
    r = await bulk(sim, "CreateMultiple", [target(line, "typed"), bare], expect=None)
    message = error_of(r, 400, BAD_PAYLOAD)
    assert "Target 1" in message and "@odata.type" in message
    assert await count(sim, MILESTONES) == before


async def test_bulk_target_of_another_type_is_400(sim, line):
    """'Use bulk operation messages': the @odata.type must be the entity type of the set the action is bound to."""
    r = await bulk(
        sim, "CreateMultiple", [target(line, "x", **{"@odata.type": "Microsoft.Dynamics.CRM.account"})], expect=None
    )
    assert "Microsoft.Dynamics.CRM.account" in error_of(r, 400, BAD_PAYLOAD)


@pytest.mark.parametrize("payload", [{}, {"Targets": []}, {"Targets": {"msdyn_name": "x"}}, [1, 2]])
async def test_bulk_without_a_targets_array_is_400(sim, payload):
    """'Use bulk operation messages': the request body is {"Targets": [...]}."""
    r = await sim.dv("POST", f"{MILESTONES}/Microsoft.Dynamics.CRM.CreateMultiple", json=payload)
    assert "Targets" in error_of(r, 400, BAD_PAYLOAD)


async def test_bulk_on_a_set_not_configured_for_it_is_400_pointing_to_batch(sim, line):
    """'Use bulk operation messages': not every table supports CreateMultiple; the answer is 400 and the fallback is $batch."""
    assert (await sim.admin("PUT", "settings", json={"bulk_action_sets": []})).status_code == 200
    before = await count(sim, MILESTONES)
    r = await bulk(sim, "CreateMultiple", [target(line)], expect=None)
    message = error_of(r, 400, NOT_SUPPORTED)
    assert "'CreateMultiple' message is not supported" in message and "$batch" in message
    assert await count(sim, MILESTONES) == before
    accounts = await count(sim, "accounts")
    r = await bulk(
        sim,
        "CreateMultiple",
        [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "Fabrikam"}],
        entity_set="accounts",
        expect=None,
    )
    assert "entities of type 'account'" in error_of(r, 400, NOT_SUPPORTED)
    assert await count(sim, "accounts") == accounts


# --- $batch -------------------------------------------------------------------------------------


async def test_batch_of_independent_requests(sim, line):
    """'Batch requests': requests run in order; the 200 OK response holds one part per request, in the same order."""
    parts = [
        request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="batched 1")),
        request_part("POST", f"http://sim.test{DV}{MILESTONES}", milestone_payload(line, name="batched 2")),
        request_part(
            "GET", f"{DV}{MILESTONES}?$select=msdyn_name&$filter=startswith(msdyn_name,'batched')&$orderby=msdyn_name"
        ),
    ]
    r = await post_batch(sim, parts)
    assert r.status_code == 200
    items = parse_batch_response(r)
    assert [i.status for i in items] == [204, 204, 200]
    assert all(i.headers["odata-entityid"].startswith(f"http://sim.test{DV}{MILESTONES}(") for i in items[:2])
    assert [row["msdyn_name"] for row in items[2].json()["value"]] == ["batched 1", "batched 2"]


async def test_get_inside_a_batch(sim, line):
    """'Batch requests' / 'Use FetchXML within a batch request': GET requests can be sent in a batch (outside change sets)."""
    await bulk(sim, "CreateMultiple", [target(line, f"m{i}") for i in range(3)])
    r = await post_batch(
        sim,
        [
            request_part("GET", f"{MILESTONES}?$count=true&$top=1"),
            request_part("GET", f"salesorderdetails({line['line_id']})?$select=msdyn_billingmethod"),
            request_part("GET", "WhoAmI"),
        ],
    )
    first, second, third = parse_batch_response(r)
    assert first.json()["@odata.count"] == 3 and len(first.json()["value"]) == 1
    assert second.json()["msdyn_billingmethod"] == FIXED_PRICE
    assert "OrganizationId" in third.json()


async def test_changeset_succeeds_as_a_whole(sim, line):
    """'Change sets': a successful change set answers a nested multipart with one part per request, carrying each Content-ID."""
    before = await count(sim, MILESTONES)
    cs = changeset_part(
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="cs 1"), content_id="1"),
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="cs 2"), content_id="2"),
        ]
    )
    r = await post_batch(sim, [cs])
    assert r.status_code == 200
    (result,) = parse_batch_response(r)
    assert isinstance(result, ChangesetResponse)
    assert [(p.status, p.content_id) for p in result.parts] == [(204, "1"), (204, "2")]
    assert await count(sim, MILESTONES) == before + 2


async def test_changeset_is_atomic(sim, line):
    """'Change sets': if any operation fails, completed ones are rolled back; the response is the failing request's error alone."""
    before = await count(sim, MILESTONES)
    cs = changeset_part(
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="rolled back"), content_id="1"),
            request_part(
                "POST", f"{DV}{MILESTONES}", {**milestone_payload(line), "msdyn_amount": "lots"}, content_id="2"
            ),
        ]
    )
    r = await post_batch(sim, [cs])
    items = parse_batch_response(r)
    assert len(items) == 1 and isinstance(items[0], Part)
    assert "msdyn_amount" in part_error(items[0], 400, BAD_PAYLOAD)
    assert await count(sim, MILESTONES) == before
    assert await count(sim, MILESTONES, "msdyn_name eq 'rolled back'") == 0


async def test_content_id_reference_in_url(sim, line):
    """'Reference URIs in an operation': $1 in a later request's URL addresses the row created by Content-ID 1."""
    cs = changeset_part(
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="created"), content_id="1"),
            request_part("PATCH", "$1", {"msdyn_name": "patched through $1"}, content_id="2"),
        ]
    )
    (result,) = parse_batch_response(await post_batch(sim, [cs]))
    assert [p.status for p in result.parts] == [204, 204]
    url = result.parts[0].headers["odata-entityid"]
    got = await sim.client.get(url, headers=await sim.auth())
    assert body(got)["msdyn_name"] == "patched through $1"


async def test_content_id_reference_in_request_body(sim):
    """'Reference URIs in request body': "<nav>@odata.bind": "$1" binds to the row created earlier in the change set."""
    customer = body(await sim.dv("GET", "accounts?$top=1"))["value"][0]["accountid"]
    cs = changeset_part(
        [
            request_part(
                "POST",
                "salesorders",
                {"name": "Batch contract", "customerid_account@odata.bind": f"/accounts({customer})"},
                content_id="1",
            ),
            request_part(
                "POST",
                "salesorderdetails",
                {"lineitemnumber": 1, "msdyn_billingmethod": FIXED_PRICE, "salesorderid@odata.bind": "$1"},
                content_id="2",
            ),
        ]
    )
    items = parse_batch_response(await post_batch(sim, [cs]))
    assert isinstance(items[0], ChangesetResponse), items[0]
    contract_url, line_url = (p.headers["odata-entityid"] for p in items[0].parts)
    new_line = body(await sim.client.get(line_url, headers=await sim.auth()))
    assert contract_url.endswith(f"({new_line['_salesorderid_value']})")
    contract = body(await sim.client.get(contract_url, headers=await sim.auth()))
    assert (contract["name"], contract["_customerid_value"]) == ("Batch contract", customer)


async def test_reference_to_an_undeclared_content_id_is_400(sim, line):
    """'Reference URIs in an operation': referencing a Content-ID not declared before answers 400; the change set writes nothing."""
    before = await count(sim, MILESTONES)
    cs = changeset_part(
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line), content_id="1"),
            request_part("PATCH", "$7", {"msdyn_name": "nowhere"}, content_id="2"),
        ]
    )
    (item,) = parse_batch_response(await post_batch(sim, [cs]))
    assert "$7" in part_error(item, 400, BAD_PAYLOAD)
    cs = changeset_part(
        [
            request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line), content_id="1"),
            request_part(
                "POST",
                f"{DV}{MILESTONES}",
                {**milestone_payload(line), "msdyn_ContractLineId@odata.bind": "$5"},
                content_id="2",
            ),
        ]
    )
    (item,) = parse_batch_response(await post_batch(sim, [cs]))
    assert "Content-ID Reference: '$5' does not exist" in part_error(item, 400, BAD_PAYLOAD)
    assert await count(sim, MILESTONES) == before


def _three_creates(line, first_bad: bool) -> list[str]:
    bad = {**milestone_payload(line, name="bad"), "msdyn_invoicedate": "not a date"}
    return [
        request_part("POST", f"{DV}{MILESTONES}", bad if first_bad else milestone_payload(line, name="t1")),
        request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="t2")),
        request_part("POST", f"{DV}{MILESTONES}", milestone_payload(line, name="t3")),
    ]


async def test_batch_stops_at_the_first_error_without_continue_on_error(sim, line):
    """'Handling errors': when a request fails, its error is returned for the batch and no more requests are processed
    (the article's example answers HTTP/1.1 400 for the batch)."""
    before = await count(sim, MILESTONES)
    r = await post_batch(sim, _three_creates(line, first_bad=True))
    assert r.status_code == 400
    items = parse_batch_response(r)
    assert len(items) == 1
    assert "Edm.Date" in part_error(items[0], 400, BAD_PAYLOAD)
    assert await count(sim, MILESTONES) == before


async def test_requests_outside_a_changeset_are_not_rolled_back_when_a_later_one_fails(sim, line):
    """'When to use batch requests': without a change set a batch is ExecuteMultiple, not a transaction; requests that ran
    before the failing one stay done, and the rest are not processed."""
    before = await count(sim, MILESTONES)
    parts = _three_creates(line, first_bad=False)
    parts[1] = request_part(
        "POST", f"{DV}{MILESTONES}", {**milestone_payload(line, name="t2"), "msdyn_invoicestatus": "ready"}
    )
    r = await post_batch(sim, parts)
    assert r.status_code == 400
    assert [i.status for i in parse_batch_response(r)] == [204, 400]
    assert await count(sim, MILESTONES) == before + 1
    assert await count(sim, MILESTONES, "msdyn_name eq 't1'") == 1


async def test_batch_continues_after_an_error_with_continue_on_error(sim, line):
    """'Handling errors': with Prefer: odata.continue-on-error the batch answers 200 OK and every request is processed."""
    before = await count(sim, MILESTONES)
    r = await post_batch(sim, _three_creates(line, first_bad=True), headers={"Prefer": "odata.continue-on-error"})
    assert r.status_code == 200
    items = parse_batch_response(r)
    assert [i.status for i in items] == [400, 204, 204]
    assert await count(sim, MILESTONES) == before + 2


async def test_batch_with_more_than_1000_requests_is_400(sim, line):
    """'When to use batch requests': batch requests can contain up to 1,000 individual requests."""
    before = await count(sim, MILESTONES)
    r = await post_batch(
        sim, [request_part("POST", MILESTONES, milestone_payload(line, name=f"m{i}")) for i in range(1001)]
    )
    assert "The batch has 1001 requests; a $batch may carry at most 1000" in error_of(r, 400, BATCH_TOO_LARGE)
    assert await count(sim, MILESTONES) == before
    r = await post_batch(sim, [request_part("GET", "WhoAmI") for _ in range(1000)])
    assert r.status_code == 200 and len(parse_batch_response(r)) == 1000


async def test_changeset_members_count_towards_the_1000_limit(sim, line):
    """'When to use batch requests': the limit counts individual requests, including those inside change sets."""
    cs = changeset_part(
        [
            request_part("POST", MILESTONES, milestone_payload(line, name=f"m{i}"), content_id=str(i))
            for i in range(1000)
        ]
    )
    before = await count(sim, MILESTONES)
    r = await post_batch(sim, [cs, request_part("GET", "WhoAmI")])
    assert "The batch has 1001 requests" in error_of(r, 400, BATCH_TOO_LARGE)
    assert await count(sim, MILESTONES) == before


async def test_batch_cannot_contain_a_batch(sim, line):
    """'When to use batch requests': batch requests can't contain other batch requests. The inner batch is otherwise
    valid (its URL is the $batch endpoint, its body a well-formed multipart with a create in it), so the 400 can only
    come from the nesting, and the create inside it never runs."""
    before = await count(sim, MILESTONES)
    inner_body, inner_type = batch_body(
        [request_part("POST", MILESTONES, milestone_payload(line, name="nested"))], boundary="batch_inner"
    )
    nested = CRLF.join(
        [
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"POST {DV}$batch HTTP/1.1",
            f"Content-Type: {inner_type}",
            "",
            inner_body.decode(),
        ]
    )
    r = await post_batch(sim, [nested, request_part("GET", "WhoAmI")], headers={"Prefer": "odata.continue-on-error"})
    assert r.status_code == 200
    nested_item, whoami = parse_batch_response(r)
    assert part_error(nested_item, 400, BAD_PAYLOAD) == "A $batch cannot contain another $batch."
    assert whoami.status == 200
    assert await count(sim, MILESTONES) == before
    assert await count(sim, MILESTONES, "msdyn_name eq 'nested'") == 0


async def test_malformed_batch_body_is_400(sim):
    """OData 4.0 §11.7.2: the batch body is multipart/mixed with the boundary of its Content-Type."""
    r = await sim.dv(
        "POST",
        "$batch",
        content=b"--batch_X\r\nContent-Type: application/http\r\n\r\nGET WhoAmI HTTP/1.1\r\n\r\n--batch_X--\r\n",
        headers={"Content-Type": "multipart/mixed; boundary=batch_Y"},
    )
    error_of(r, 400, BAD_PAYLOAD)


async def test_request_log_shows_the_inner_requests_of_a_batch(sim, line):
    """Simulator request log (DESIGN.md): a $batch is logged once, and each inner request is logged with `batch` pointing at it."""
    seq = max([e["seq"] for e in await sim.log()] or [0])
    parts = _three_creates(line, first_bad=False) + [request_part("GET", f"{MILESTONES}?$top=1")]
    assert (await post_batch(sim, parts)).status_code == 200
    entries = await sim.log(seq)
    (outer,) = [e for e in entries if e["path"].endswith("$batch")]
    assert (outer["method"], outer["status"]) == ("POST", 200)
    inner = [e for e in entries if e.get("batch") == outer["seq"]]
    assert [(e["method"], e["status"]) for e in inner] == [("POST", 204)] * 3 + [("GET", 200)]
    assert all(MILESTONES in e["path"] for e in inner)


async def test_request_log_of_a_failed_changeset_shows_what_ran(sim, line):
    """Simulator request log: inner requests of a failed change set are logged with their statuses; nothing after them ran."""
    seq = max([e["seq"] for e in await sim.log()] or [0])
    cs = changeset_part(
        [
            request_part("POST", MILESTONES, milestone_payload(line), content_id="1"),
            request_part("DELETE", f"{MILESTONES}({uuid.uuid4()})", content_id="2"),
        ]
    )
    r = await post_batch(sim, [cs, request_part("GET", "WhoAmI")])
    assert r.status_code == 404
    entries = await sim.log(seq)
    outer = next(e for e in entries if e["path"].endswith("$batch"))
    assert outer["status"] == 404
    assert [(e["method"], e["status"]) for e in entries if e.get("batch") == outer["seq"]] == [
        ("POST", 204),
        ("DELETE", 404),
    ]


async def test_read_only_identity_gets_403_inside_a_batch(sim, line):
    """'Security roles and privileges' inside 'Execute batch operations': each inner write is checked; reads are allowed."""
    before = await count(sim, MILESTONES)
    r = await post_batch(
        sim,
        [request_part("GET", "WhoAmI"), request_part("POST", MILESTONES, milestone_payload(line))],
        headers={"Prefer": "odata.continue-on-error"},
        who=READER,
    )
    ok, denied = parse_batch_response(r)
    assert ok.status == 200
    part_error(denied, 403, PRIVILEGE)
    assert await count(sim, MILESTONES) == before


async def test_return_representation_inside_a_batch(sim, line):
    """'Create with data returned' inside a batch: the inner request's Prefer header applies to that request."""
    r = await post_batch(
        sim,
        [
            request_part(
                "POST", MILESTONES, milestone_payload(line, name="shown"), headers={"Prefer": "return=representation"}
            )
        ],
    )
    (item,) = parse_batch_response(r)
    assert item.status == 201 and item.json()["msdyn_name"] == "shown"


@pytest.mark.socket
async def test_socket_batch_with_changeset_and_get(socket_sim):
    """'Execute batch operations' over a real HTTP connection: a change set with a $1 reference, then a GET."""
    fp = await line_by_method(socket_sim, FIXED_PRICE)
    base = str(socket_sim.client.base_url).rstrip("/")
    cs = changeset_part(
        [
            request_part("POST", f"{base}{DV}{MILESTONES}", milestone_payload(fp, name="socket 1"), content_id="1"),
            request_part("PATCH", "$1", {"msdyn_amount": 42}, content_id="2"),
        ]
    )
    r = await post_batch(socket_sim, [cs, request_part("GET", f"{DV}{MILESTONES}?$filter=msdyn_name eq 'socket 1'")])
    assert r.status_code == 200
    changeset, query = parse_batch_response(r)
    assert [p.status for p in changeset.parts] == [204, 204]
    assert changeset.parts[0].headers["odata-entityid"].startswith(base + DV)
    (row,) = query.json()["value"]
    assert row["msdyn_amount"] == Decimal(42)
    not_found = parse_batch_response(
        await post_batch(socket_sim, [request_part("GET", f"{MILESTONES}({uuid.uuid4()})")])
    )[0]
    part_error(not_found, 404, NOT_FOUND)
