"""Contract tests: the simulator's invoice actions ("Create invoices" on a project contract and
"Confirm" on a pro-forma invoice) and the milestone rules around them.

Sources: DESIGN.md "Domain facts" (msdyn_NewInvoiceContract bound to salesorder and
msdyn_PostInvoice bound to invoice, as older Project Operations references name them; the
names are environment settings checked against $metadata; msdyn_invoicestatus values), Project
Operations "Create manual pro-forma invoices" / "Confirm a pro-forma invoice" (one invoice per
contract covering its Ready-for-invoicing transactions; confirming moves them to Customer invoice
posted), and Dataverse Web API "Use Web API actions" (bound actions are POSTed to
<entity set>(<id>)/Microsoft.Dynamics.CRM.<action>).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.conftest import READER, fixed_price_line
from tests.sim.dataverse_helpers import (
    CREATED,
    INVALID_ARGUMENT,
    MILESTONE_KEY,
    MILESTONES,
    NOT_FOUND,
    NOT_READY,
    POSTED,
    PRIVILEGE,
    READY,
    URI_ERROR,
    body,
    count,
    error_of,
    milestone_json,
)

NS = "Microsoft.Dynamics.CRM"


@pytest.fixture
def lines(sim) -> list[dict]:
    """The three fixed-price lines of the first seeded contract, and one line of another contract."""
    first = [fixed_price_line(sim.conn, i) for i in range(3)]
    assert len({line["contract_id"] for line in first}) == 1
    other = fixed_price_line(sim.conn, 3)
    assert other["contract_id"] != first[0]["contract_id"]
    return first + [other]


async def add(sim, line: dict, amount: str, status: int = READY, name: str = "Milestone") -> str:
    r = await sim.dv(
        "POST",
        MILESTONES,
        content=milestone_json(line, amount, name=name, status=status),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 204, r.text
    return r.headers["OData-EntityId"][-37:-1]


async def status_of(sim, key: str) -> int:
    return body(await sim.dv("GET", f"{MILESTONES}({key})?$select=msdyn_invoicestatus"))["msdyn_invoicestatus"]


async def create_invoice(sim, contract_id: str, action: str = "msdyn_NewInvoiceContract"):
    return await sim.dv("POST", f"salesorders({contract_id})/{NS}.{action}", json={})


async def confirm(sim, invoice_id: str, action: str = "msdyn_PostInvoice"):
    return await sim.dv("POST", f"invoices({invoice_id})/{NS}.{action}", json={})


async def test_create_invoice_covers_exactly_the_ready_milestones_of_the_contract(sim, lines):
    """Create invoices: one draft invoice for the contract, total = exact sum of its Ready-for-invoicing milestones,
    one invoice line per contract line; those milestones become Customer invoice created (192350002)."""
    l0, l1, l2, other = lines
    ready = {
        await add(sim, l0, "0.10"): l0,
        await add(sim, l0, "1234567.89"): l0,
        await add(sim, l1, "0.0001"): l1,
        await add(sim, l1, "250.25"): l1,
    }
    not_ready = await add(sim, l2, "999", status=NOT_READY)
    elsewhere = await add(sim, other, "777")
    r = await create_invoice(sim, l0["contract_id"])
    assert r.status_code == 200, r.text
    invoice = body(r)
    assert invoice["@odata.context"].endswith("$metadata#invoices/$entity")
    assert invoice["_salesorderid_value"] == l0["contract_id"]
    assert invoice["statuscode"] == 1 and invoice["statecode"] == 0  # draft
    assert invoice["totalamount"] == Decimal("0.10") + Decimal("1234567.89") + Decimal("0.0001") + Decimal("250.25")
    assert await count(sim, "invoices") == 1

    details = body(await sim.dv("GET", f"invoicedetails?$filter=_invoiceid_value eq {invoice['invoiceid']}"))["value"]
    per_line = {d["_salesorderdetailid_value"]: d["extendedamount"] for d in details}
    assert per_line == {l0["line_id"]: Decimal("1234567.99"), l1["line_id"]: Decimal("250.2501")}

    for key in ready:
        assert await status_of(sim, key) == CREATED
    assert await status_of(sim, not_ready) == NOT_READY
    assert await status_of(sim, elsewhere) == READY


async def test_create_invoice_without_ready_milestones_is_400_and_creates_nothing(sim, lines):
    """Create invoices: with no transactions ready for invoicing there is nothing to invoice; no invoice is created."""
    await add(sim, lines[0], "100", status=NOT_READY)
    message = error_of(await create_invoice(sim, lines[0]["contract_id"]), 400)
    assert "ready for invoicing" in message and lines[0]["contract_number"] in message
    assert await count(sim, "invoices") == 0
    assert await count(sim, "invoicedetails") == 0


async def test_milestones_are_invoiced_once(sim, lines):
    """Create invoices: milestones already on an invoice are not Ready any more; a second run finds nothing to invoice."""
    await add(sim, lines[0], "100")
    assert (await create_invoice(sim, lines[0]["contract_id"])).status_code == 200
    error_of(await create_invoice(sim, lines[0]["contract_id"]), 400)
    assert await count(sim, "invoices") == 1


async def test_create_invoice_for_a_missing_contract_is_404(sim):
    """'Use Web API actions': a bound action on a row that does not exist answers 404 code 0x80040217."""
    error_of(await create_invoice(sim, str(uuid.uuid4())), 404, NOT_FOUND)


async def test_confirm_posts_the_invoice_and_its_milestones(sim, lines):
    """Confirm: the invoice becomes Confirmed (statuscode 100001) and its milestones Customer invoice posted (192350003)."""
    keys = [await add(sim, lines[0], "10.50"), await add(sim, lines[1], "20.25")]
    untouched = await add(sim, lines[3], "5")
    invoice_id = body(await create_invoice(sim, lines[0]["contract_id"]))["invoiceid"]
    r = await confirm(sim, invoice_id)
    assert r.status_code == 204
    invoice = body(await sim.dv("GET", f"invoices({invoice_id})"))
    assert (invoice["statuscode"], invoice["statecode"]) == (100001, 2)
    assert invoice["totalamount"] == Decimal("30.75")
    assert [await status_of(sim, k) for k in keys] == [POSTED, POSTED]
    assert await status_of(sim, untouched) == READY


async def test_confirming_twice_is_400(sim, lines):
    """Confirm: only a draft pro-forma invoice can be confirmed; the second confirm is refused and changes nothing."""
    key = await add(sim, lines[0], "10")
    invoice_id = body(await create_invoice(sim, lines[0]["contract_id"]))["invoiceid"]
    assert (await confirm(sim, invoice_id)).status_code == 204
    before = body(await sim.dv("GET", f"invoices({invoice_id})"))["@odata.etag"]
    assert "draft" in error_of(await confirm(sim, invoice_id), 400)
    assert body(await sim.dv("GET", f"invoices({invoice_id})"))["@odata.etag"] == before
    assert await status_of(sim, key) == POSTED


async def test_confirm_of_a_missing_invoice_is_404(sim):
    """'Use Web API actions': a bound action on a row that does not exist answers 404 code 0x80040217."""
    error_of(await confirm(sim, str(uuid.uuid4())), 404, NOT_FOUND)


@pytest.mark.parametrize("stage", ["created", "posted"])
async def test_an_invoiced_milestone_cannot_be_changed_or_deleted(sim, lines, stage):
    """Project Operations: a milestone on a customer invoice (192350002 / 192350003) cannot be edited or deleted."""
    key = await add(sim, lines[0], "100", name="Invoiced")
    invoice_id = body(await create_invoice(sim, lines[0]["contract_id"]))["invoiceid"]
    if stage == "posted":
        assert (await confirm(sim, invoice_id)).status_code == 204
    expected = CREATED if stage == "created" else POSTED
    for method, kw in (
        ("PATCH", {"json": {"msdyn_amount": 1}}),
        ("PATCH", {"json": {"msdyn_invoicestatus": READY}}),
        ("DELETE", {}),
    ):
        assert "cannot be changed" in error_of(
            await sim.dv(method, f"{MILESTONES}({key})", **kw), 400, INVALID_ARGUMENT
        )
    r = await sim.dv(
        "POST",
        f"{MILESTONES}/{NS}.UpsertMultiple",
        json={
            "Targets": [
                {"@odata.type": f"{NS}.msdyn_contractlinescheduleofvalue", MILESTONE_KEY: key, "msdyn_name": "sneaky"}
            ]
        },
    )
    message = error_of(r, 400, INVALID_ARGUMENT)
    assert "UpsertMultiple target 0" in message and "already on a customer invoice" in message
    row = body(await sim.dv("GET", f"{MILESTONES}({key})"))
    assert (row["msdyn_name"], row["msdyn_amount"], row["msdyn_invoicestatus"]) == ("Invoiced", Decimal(100), expected)


async def test_renamed_actions_work_and_old_names_are_404(sim, lines):
    """DESIGN.md: the action names are settings of the environment; after renaming, the new names work and the old ones
    answer 404 'Resource not found for the segment ...'."""
    r = await sim.admin(
        "PUT",
        "settings",
        json={"invoice_create_action": "contoso_CreateInvoices", "invoice_confirm_action": "contoso_ConfirmInvoice"},
    )
    assert r.status_code == 200 and r.json()["invoice_create_action"] == "contoso_CreateInvoices"
    key = await add(sim, lines[0], "12.34")
    message = error_of(await create_invoice(sim, lines[0]["contract_id"]), 404, URI_ERROR)
    assert message == f"Resource not found for the segment '{NS}.msdyn_NewInvoiceContract'."
    assert await count(sim, "invoices") == 0
    r = await create_invoice(sim, lines[0]["contract_id"], action="contoso_CreateInvoices")
    assert r.status_code == 200
    invoice_id = body(r)["invoiceid"]
    error_of(await confirm(sim, invoice_id), 404, URI_ERROR)
    assert await status_of(sim, key) == CREATED
    assert (await confirm(sim, invoice_id, action="contoso_ConfirmInvoice")).status_code == 204
    assert await status_of(sim, key) == POSTED


async def test_invoice_actions_need_write_privilege(sim, lines):
    """'Security roles and privileges': the read-only identity gets 403 (0x80040220) on the actions; nothing changes."""
    key = await add(sim, lines[0], "10")
    r = await sim.dv(
        "POST", f"salesorders({lines[0]['contract_id']})/{NS}.msdyn_NewInvoiceContract", who=READER, json={}
    )
    error_of(r, 403, PRIVILEGE)
    assert await count(sim, "invoices") == 0
    assert await status_of(sim, key) == READY


async def test_actions_answer_only_post(sim, lines):
    """'Use Web API actions': actions are invoked with POST; a GET on an action is not allowed (405)."""
    r = await sim.dv("GET", f"salesorders({lines[0]['contract_id']})/{NS}.msdyn_NewInvoiceContract")
    error_of(r, 405)


async def test_deleting_a_draft_invoice_returns_its_milestones_to_ready(sim, lines):
    """Deleting a draft pro-forma invoice removes its lines and puts its milestones back to Ready
    for invoicing (the simulator's reading; not documented by Microsoft), so they can be
    deleted or invoiced again."""
    keys = [await add(sim, lines[0], "10.50"), await add(sim, lines[1], "20.25")]
    invoice_id = body(await create_invoice(sim, lines[0]["contract_id"]))["invoiceid"]
    assert [await status_of(sim, k) for k in keys] == [CREATED, CREATED]
    r = await sim.dv("DELETE", f"invoices({invoice_id})")
    assert r.status_code == 204, r.text
    assert (await sim.dv("GET", f"invoices({invoice_id})")).status_code == 404
    details = body(await sim.dv("GET", f"invoicedetails?$filter=_invoiceid_value eq {invoice_id}"))["value"]
    assert details == []
    assert [await status_of(sim, k) for k in keys] == [READY, READY]
    assert (await sim.dv("DELETE", f"{MILESTONES}({keys[0]})")).status_code == 204


async def test_a_confirmed_invoice_cannot_be_deleted(sim, lines):
    keys = [await add(sim, lines[0], "10.50")]
    invoice_id = body(await create_invoice(sim, lines[0]["contract_id"]))["invoiceid"]
    assert (await confirm(sim, invoice_id)).status_code == 204
    r = await sim.dv("DELETE", f"invoices({invoice_id})")
    assert "only a draft invoice can be deleted" in error_of(r, 400, INVALID_ARGUMENT)
    assert body(await sim.dv("GET", f"invoices({invoice_id})"))["msdyn_projectinvoicestatus"] == 192350002
    assert await status_of(sim, keys[0]) == POSTED
