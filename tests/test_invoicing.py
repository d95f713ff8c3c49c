"""Invoicing the migrated milestones (cutover.invoicing) against the rehearsal simulator.

No mocks: milestones are created through the DataverseClient bulk path (Ready for invoicing,
deterministic ids), the maps are stopped through the simulator's dual-write page, and every
assertion reads statuses, counts, amounts or the simulator's request log.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from cutover.domain import InvoiceStatus, ProjectInvoiceStatus, deterministic_id
from cutover.fno import FnoClient
from cutover.invoicing import (
    BLOCKED,
    CONFIRM,
    CREATE,
    DONE,
    Clients,
    DraftMismatch,
    ExistingInvoice,
    ForeignBillableItems,
    InvoiceActions,
    InvoiceActionSent,
    InvoicesConfirmed,
    InvoicesCreated,
    InvoicesWaiting,
    InvoicingBlocked,
    InvoicingNotice,
    InvoicingRefused,
    InvoicingTimeout,
    LiveMilestone,
    MigratedMilestone,
    Polling,
    confirm_invoices,
    create_invoices,
    invoice_state,
    plan_invoicing,
    prepare_invoicing,
)
from cutover.profile import ConfigError, Profile
from cutover.transport import Transport
from tests.conftest import FNO
from tests.dataverse_harness import KEY, MILESTONE, MILESTONES, HarnessToken, client, no_sleep

MAPS = ("msdyn_contractlinescheduleofvalues", "msdyn_actuals", "invoices")
NS = "Microsoft.Dynamics.CRM"
READY, CREATED, POSTED = int(InvoiceStatus.READY), int(InvoiceStatus.CREATED), int(InvoiceStatus.POSTED)
DRAFT, CONFIRMED = int(ProjectInvoiceStatus.DRAFT), int(ProjectInvoiceStatus.CONFIRMED)
FAST = Polling(timeout_s=10, first_wait_s=0.05, max_wait_s=0.2)


# --- building a world --------------------------------------------------------------------------


def contracts_with_lines(conn: sqlite3.Connection, n: int, skip: int = 0) -> list[tuple[str, list[str]]]:
    """``n`` seeded contracts that have fixed-price lines: (contract id, [line ids])."""
    rows = conn.execute(
        "SELECT d._salesorderid_value, d.salesorderdetailid FROM dv_salesorderdetails d "
        "JOIN dv_salesorders o ON o.salesorderid = d._salesorderid_value WHERE d.msdyn_billingmethod = 192350001 "
        "ORDER BY o.ordernumber, d.lineitemnumber"
    ).fetchall()
    grouped: dict[str, list[str]] = {}
    for contract, line in rows:
        grouped.setdefault(contract, []).append(line)
    return list(grouped.items())[skip : skip + n]


def milestone_record(line_id: str, legacy_id: str, amount: Decimal, status: int = READY) -> dict:
    return {
        KEY: deterministic_id(legacy_id),
        "msdyn_name": f"Milestone {legacy_id}",
        "msdyn_amount": amount,
        "msdyn_invoicedate": "2026-10-31",
        "msdyn_invoicestatus": status,
        "msdyn_ContractLineId@odata.bind": f"/salesorderdetails({line_id})",
    }


async def migrate(sim, contracts: int = 3, per_contract: int = 3, prefix: str = "LEG", skip: int = 0):
    """Create migrated milestones (Ready for invoicing) as `cutover migrate` would, through the
    bulk path; spread over the contract's fixed-price lines. Returns (milestone id, contract id, amount)."""
    dv = client(sim)
    records, migrated = [], []
    for c, (contract_id, lines) in enumerate(contracts_with_lines(sim.conn, contracts, skip)):
        for i in range(per_contract):
            legacy = f"{prefix}-{c:03d}-{i:02d}"
            amount = Decimal(1000 * (c + 1) + 10 * i) + Decimal("0.25")
            records.append(milestone_record(lines[i % len(lines)], legacy, amount))
            migrated.append(MigratedMilestone(deterministic_id(legacy), contract_id, amount))
    result = await dv.bulk_upsert(MILESTONES, MILESTONE, records)
    assert result.ok, result
    return migrated


async def stop_maps(sim, names=MAPS) -> None:
    for name in names:
        r = await sim.admin("POST", f"maps/{name}/stop")
        assert r.status_code == 200, r.text


async def clients(sim, profile=None) -> Clients:
    fno = FnoClient(
        Transport(
            f"{sim.client.base_url}{FNO}", HarnessToken(sim), environment="rehearsal", client=sim.client, sleep=no_sleep
        )
    )
    return Clients(client(sim), fno, profile)


async def collect(stream) -> list:
    return [event async for event in stream]


async def writes(sim, since: int) -> list[dict]:
    return [e for e in await sim.log(since) if e["method"] != "GET"]


async def last_seq(sim) -> int:
    log = await sim.log()
    return log[-1]["seq"] if log else 0


async def ar_gl(session) -> tuple[int, int, int]:
    fno = session.fno
    return (
        await fno.count("CustTransactions"),
        await fno.count("GeneralJournalAccountEntryBiEntities"),
        await fno.count("GeneralJournalEntryBiEntities"),
    )


def statuses(sim, ids) -> dict[str, int]:
    marks = ",".join("?" for _ in ids)
    return dict(
        sim.conn.execute(
            f"SELECT {KEY}, msdyn_invoicestatus FROM dv_{MILESTONES} WHERE {KEY} IN ({marks})", list(ids)
        ).fetchall()
    )


def invoices_of(sim, contract_ids) -> list[tuple]:
    marks = ",".join("?" for _ in contract_ids)
    return sim.conn.execute(
        f"SELECT _salesorderid_value, invoiceid, msdyn_projectinvoicestatus, totalamount FROM dv_invoices "
        f"WHERE _salesorderid_value IN ({marks}) ORDER BY _salesorderid_value",
        list(contract_ids),
    ).fetchall()


def action_posts(entries: list[dict], name: str) -> list[dict]:
    return [e for e in entries if e["method"] == "POST" and e["path"].rstrip("/").endswith(name)]


# --- the clean night --------------------------------------------------------------------------


async def test_clean_create_and_confirm_with_the_three_maps_stopped(sim):
    """Three contracts, three milestones each: one draft per contract holding exactly its
    milestones, then each confirmed; invoices Confirmed, milestones Customer invoice posted, and
    AR and GL untouched (the invoices and actuals maps are stopped)."""
    migrated = await migrate(sim)
    await stop_maps(sim)
    session = await clients(sim)
    before = await ar_gl(session)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    assert [c.action for c in plan.contracts] == [CREATE] * 3

    events = await collect(create_invoices(session, plan, polling=FAST))
    created = events[-1]
    assert isinstance(created, InvoicesCreated) and (created.created, created.already) == (3, 0)
    assert all(e.message for e in events)
    contract_ids = sorted({m.contract_id for m in migrated})
    drafts = invoices_of(sim, contract_ids)
    assert [(c, s) for c, _i, s, _t in drafts] == [(c, DRAFT) for c in contract_ids]
    for contract_id, _invoice, _status, total in drafts:  # the simulator stores money in 1/10,000 units
        assert Decimal(total) / 10_000 == sum(m.amount for m in migrated if m.contract_id == contract_id)
    assert set(statuses(sim, [m.milestone_id for m in migrated]).values()) == {CREATED}
    assert created.drafts == {c: i for c, i, _s, _t in drafts}

    events = await collect(confirm_invoices(session, plan, polling=FAST))
    done = events[-1]
    assert isinstance(done, InvoicesConfirmed) and (done.confirmed, done.already) == (3, 0)
    assert [(c, s) for c, _i, s, _t in invoices_of(sim, contract_ids)] == [(c, CONFIRMED) for c in contract_ids]
    assert set(statuses(sim, [m.milestone_id for m in migrated]).values()) == {POSTED}
    state = await invoice_state(session, migrated)
    assert state.all_confirmed and state.counts() == {DONE: 3}
    assert {c.contract_id: c.invoice_id for c in state.contracts} == done.invoices

    assert await ar_gl(session) == before  # no customer invoice reached F&O
    log = await writes(sim, since)
    assert len(action_posts(log, f"{NS}.msdyn_NewInvoiceContract")) == 3
    assert len(action_posts(log, f"{NS}.msdyn_PostInvoice")) == 3
    assert len(log) == 6  # nothing else was written
    assert all(
        e["path"].startswith("/api/data/v9.2/salesorders(") for e in action_posts(log, "msdyn_NewInvoiceContract")
    )


async def test_background_jobs_are_polled_to_the_end(sim):
    """With background_delay_s the actions answer at once and nothing has changed yet: the tool
    polls (with progress) until every draft exists and every invoice reads Confirmed."""
    migrated = await migrate(sim, contracts=2, per_contract=2)
    await stop_maps(sim)
    r = await sim.admin("PUT", "settings", json={"background_delay_s": 0.2})
    assert r.status_code == 200, r.text
    session = await clients(sim)
    plan = await prepare_invoicing(session, migrated)

    events = await collect(create_invoices(session, plan, polling=FAST))
    sent = [e for e in events if isinstance(e, InvoiceActionSent)]
    assert [e.answer for e in sent] == ["accepted", "accepted"] and all(e.invoice_id is None for e in sent)
    waits = [e for e in events if isinstance(e, InvoicesWaiting)]
    assert waits and waits[0].done == 0 and waits[0].total == 2 and "checking again" in waits[0].message
    assert isinstance(events[-1], InvoicesCreated) and events[-1].created == 2

    events = await collect(confirm_invoices(session, plan, polling=FAST))
    assert any(isinstance(e, InvoicesWaiting) and e.phase == "confirm" for e in events)
    assert isinstance(events[-1], InvoicesConfirmed) and events[-1].confirmed == 2
    assert set(statuses(sim, [m.milestone_id for m in migrated]).values()) == {POSTED}
    assert (await invoice_state(session, migrated)).all_confirmed


async def test_a_poll_that_never_ends_times_out_naming_the_contracts(sim):
    """A background job that never runs within the timeout: the tool gives up after the bound,
    says which contracts are pending, and a re-run later finishes without creating twice."""
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim)
    await sim.admin("PUT", "settings", json={"background_delay_s": 30})
    session = await clients(sim)
    plan = await prepare_invoicing(session, migrated)
    with pytest.raises(InvoicingTimeout) as err:
        await collect(create_invoices(session, plan, polling=Polling(timeout_s=0.3, first_wait_s=0.05, max_wait_s=0.1)))
    assert "1 of 1 contracts" in str(err.value) and migrated[0].contract_id in str(err.value)
    assert err.value.exit_code == 3


# --- refusals ---------------------------------------------------------------------------------


async def test_a_foreign_billable_milestone_stops_create_naming_it(sim):
    """Another milestone Ready for invoicing on one of the contracts (not ours) would be billed on
    our invoice: create is refused before any invoice is created, naming it."""
    migrated = await migrate(sim)
    contract_id, lines = contracts_with_lines(sim.conn, 1)[0]
    foreign = milestone_record(lines[0], "SOMEONE-ELSES-1", Decimal("77.70"))
    assert (await client(sim).bulk_upsert(MILESTONES, MILESTONE, [foreign])).ok
    await stop_maps(sim)
    session = await clients(sim)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    assert [c.action for c in plan.contracts].count(BLOCKED) == 1
    with pytest.raises(ForeignBillableItems) as err:
        await collect(create_invoices(session, plan, polling=FAST))
    text = str(err.value)
    assert foreign[KEY] in text and "Milestone SOMEONE-ELSES-1" in text and "77.7" in text
    assert err.value.exit_code == 1 and [c.contract_id for c in err.value.contracts] == [contract_id]
    assert await writes(sim, since) == []  # not even the other contracts' invoices
    assert invoices_of(sim, sorted({m.contract_id for m in migrated})) == []


async def test_a_draft_holding_a_foreign_milestone_is_not_confirmed(sim):
    """A draft made outside the tool that also holds someone else's milestone: confirm refuses,
    naming it, and confirms nothing."""
    migrated = await migrate(sim, contracts=1, per_contract=2)
    contract_id, lines = contracts_with_lines(sim.conn, 1)[0]
    foreign = milestone_record(lines[0], "SOMEONE-ELSES-2", Decimal("5.00"))
    assert (await client(sim).bulk_upsert(MILESTONES, MILESTONE, [foreign])).ok
    await stop_maps(sim)
    r = await sim.dv("POST", f"salesorders({contract_id})/{NS}.msdyn_NewInvoiceContract")
    assert r.status_code == 200, r.text
    session = await clients(sim)
    since = await last_seq(sim)
    with pytest.raises(ForeignBillableItems) as err:
        await collect(confirm_invoices(session, await prepare_invoicing(session, migrated), polling=FAST))
    assert foreign[KEY] in str(err.value) and "draft invoice holds" in str(err.value)
    assert await writes(sim, since) == []
    assert [s for _c, _i, s, _t in invoices_of(sim, [contract_id])] == [DRAFT]


async def test_required_async_is_refused(sim):
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim)
    assert (await sim.admin("PUT", "settings", json={"dualwrite_async_invoicing": True})).status_code == 200
    session = await clients(sim)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    for run in (create_invoices, confirm_invoices):
        with pytest.raises(InvoicingRefused) as err:
            await collect(run(session, plan, polling=FAST, stop_attested=True))
        assert "asynchronous invoice integration is on" in str(err.value)
        assert "RequiredAsync" in str(err.value) and err.value.exit_code == 1
    assert await writes(sim, since) == []


async def test_maps_running_are_refused_and_that_is_what_protects_ar(sim):
    """The invoices map left running: create and confirm are refused, naming the map and its rows.
    Confirming with it running (done here by hand) is exactly what would post to AR and GL."""
    migrated = await migrate(sim, contracts=1, per_contract=2)
    await stop_maps(sim, MAPS[:2])  # milestones and actuals stopped, invoices still running
    session = await clients(sim)
    before = await ar_gl(session)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    with pytest.raises(InvoicingRefused) as err:
        await collect(create_invoices(session, plan, polling=FAST, stop_attested=True))
    text = str(err.value)
    assert "invoices is running" in text and "ProjectInvoiceProposalV2_invoices reads Enabled" in text
    assert "msdyn_actuals" not in text.split("Fix:")[0]  # only the map that is wrong is named
    assert await writes(sim, since) == [] and await ar_gl(session) == before

    # What the refusal prevents: the same invoice confirmed with the invoices map running.
    contract_id = migrated[0].contract_id
    invoice = (await sim.dv("POST", f"salesorders({contract_id})/{NS}.msdyn_NewInvoiceContract")).json()
    assert (await sim.dv("POST", f"invoices({invoice['invoiceid']})/{NS}.msdyn_PostInvoice")).status_code == 204
    ar, gl_lines, gl_entries = await ar_gl(session)
    assert ar == before[0] + 1 and gl_lines > before[1]


async def test_paused_map_is_not_stopped(sim):
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim, MAPS[:2])
    assert (await sim.admin("POST", "maps/invoices/pause")).status_code == 200
    session = await clients(sim)
    with pytest.raises(InvoicingRefused) as err:
        await collect(create_invoices(session, await prepare_invoicing(session, migrated), polling=FAST))
    assert "invoices is neither" in str(err.value) and "Queueing" in str(err.value)


async def test_unreadable_map_state_needs_an_attested_stop(sim):
    """403 on map state (the blind rehearsal): refused unless the caller says the stop was
    attested; then it goes on and says it relied on the attestation."""
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim)
    r = await sim.admin("PUT", "settings", json={"map_state_hidden_from": ["cutover-rehearsal"]})
    assert r.status_code == 200, r.text
    session = await clients(sim)
    plan = await prepare_invoicing(session, migrated)
    with pytest.raises(InvoicingRefused) as err:
        await collect(create_invoices(session, plan, polling=FAST))
    assert "cannot read map state" in str(err.value) and "not attested" in str(err.value)
    events = await collect(create_invoices(session, plan, polling=FAST, stop_attested=True))
    warnings = [e for e in events if isinstance(e, InvoicingNotice) and e.level == "warning"]
    assert warnings and "relying on the attested stop" in warnings[0].message
    assert isinstance(events[-1], InvoicesCreated) and events[-1].created == 1


# --- idempotence ------------------------------------------------------------------------------


async def test_a_rerun_creates_and_confirms_nothing_new(sim):
    migrated = await migrate(sim, contracts=2, per_contract=2)
    await stop_maps(sim)
    session = await clients(sim)
    plan = await prepare_invoicing(session, migrated)
    await collect(create_invoices(session, plan, polling=FAST))

    since = await last_seq(sim)  # create again: every contract has its draft
    events = await collect(create_invoices(session, plan, polling=FAST))
    assert (events[-1].created, events[-1].already) == (0, 2)
    assert await writes(sim, since) == []

    await collect(confirm_invoices(session, plan, polling=FAST))
    invoices_after = invoices_of(sim, sorted({m.contract_id for m in migrated}))
    since = await last_seq(sim)
    for run in (create_invoices, confirm_invoices):
        events = await collect(run(session, plan, polling=FAST))
        assert not any(isinstance(e, InvoiceActionSent) for e in events)
    assert isinstance(events[-1], InvoicesConfirmed) and (events[-1].confirmed, events[-1].already) == (0, 2)
    assert await writes(sim, since) == []
    assert invoices_of(sim, sorted({m.contract_id for m in migrated})) == invoices_after


async def test_confirm_before_create_is_refused(sim):
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim)
    session = await clients(sim)
    since = await last_seq(sim)
    with pytest.raises(InvoicingBlocked) as err:
        await collect(confirm_invoices(session, await prepare_invoicing(session, migrated), polling=FAST))
    assert "no invoice yet" in str(err.value) and await writes(sim, since) == []


# --- create style and action names ----------------------------------------------------------


async def test_unbound_create_style_sends_contract_ids_in_one_call(sim):
    migrated = await migrate(sim, contracts=3, per_contract=1)
    await stop_maps(sim)
    session = await clients(sim)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    events = await collect(create_invoices(session, plan, create_style="unbound", polling=FAST))
    assert isinstance(events[-1], InvoicesCreated) and events[-1].created == 3
    sent = [e for e in events if isinstance(e, InvoiceActionSent)]
    assert len(sent) == 1 and sorted(sent[0].contract_ids) == sorted({m.contract_id for m in migrated})
    log = await writes(sim, since)
    assert [e["path"] for e in log] == ["/api/data/v9.2/msdyn_ProjectServiceCreateInvoices"]
    await collect(confirm_invoices(session, plan, create_style="unbound", polling=FAST))
    assert (await invoice_state(session, migrated)).all_confirmed


async def test_create_style_comes_from_the_profile(sim):
    """A profile whose create style is unbound (once profile.py has invoice_create_style; here an
    object standing in for it) uses the unbound default action name."""
    profile = Profile(name="reh", kind="rehearsal", dataverse_url="http://127.0.0.1:1", fno_url="http://127.0.0.1:1")
    assert InvoiceActions.from_profile(profile).style == "bound"
    assert InvoiceActions.from_profile(profile, "unbound").create == "msdyn_ProjectServiceCreateInvoices"
    with pytest.raises(ConfigError) as err:
        InvoiceActions(style="sideways", profile="reh")
    assert err.value.key == "invoice_create_style"


async def test_a_missing_action_is_named_with_its_profile_setting(sim):
    """The environment's create action has another name: nothing is sent, and the error names the
    profile setting and the action the environment does list."""
    migrated = await migrate(sim, contracts=1, per_contract=1)
    await stop_maps(sim)
    assert (
        await sim.admin("PUT", "settings", json={"invoice_create_action": "msdyn_CreateInvoicesV2"})
    ).status_code == 200
    profile = Profile(name="reh", kind="rehearsal", dataverse_url="http://127.0.0.1:1", fno_url="http://127.0.0.1:1")
    session = await clients(sim, profile)
    since = await last_seq(sim)
    plan = await prepare_invoicing(session, migrated)
    with pytest.raises(ConfigError) as err:
        await collect(create_invoices(session, plan, polling=FAST))
    text = str(err.value)
    assert err.value.key == "invoice_create_action" and "invoice_create_action" in text
    assert "'msdyn_NewInvoiceContract'" in text and "msdyn_CreateInvoicesV2" in text and "[profiles.reh]" in text
    assert err.value.exit_code == 2

    # the bound style with the unbound action's name: the hint is the style setting
    with pytest.raises(ConfigError) as err:
        await collect(
            create_invoices(session, plan, actions=InvoiceActions("msdyn_ProjectServiceCreateInvoices"), polling=FAST)
        )
    assert 'invoice_create_style = "unbound"' in str(err.value)

    # a confirm action the environment does not have
    with pytest.raises(ConfigError) as err:
        await collect(
            confirm_invoices(
                session, plan, actions=InvoiceActions("msdyn_CreateInvoicesV2", "msdyn_ConfirmInvoice"), polling=FAST
            )
        )
    assert err.value.key == "invoice_confirm_action" and "'msdyn_ConfirmInvoice'" in str(err.value)
    assert await writes(sim, since) == []

    # the profile naming the environment's action works
    renamed = Profile(
        name="reh",
        kind="rehearsal",
        dataverse_url="http://127.0.0.1:1",
        fno_url="http://127.0.0.1:1",
        invoice_create_action="msdyn_CreateInvoicesV2",
    )
    events = await collect(create_invoices(await clients(sim, renamed), plan, polling=FAST))
    assert isinstance(events[-1], InvoicesCreated) and events[-1].created == 1


# --- the plan, pure ---------------------------------------------------------------------------


def _ms(mid, cid, amount="10.00"):
    return MigratedMilestone(mid, cid, Decimal(amount))


def _live(mid, cid, status, amount="10.00", line="l1", name=None):
    return LiveMilestone(mid, cid, line, name or mid, Decimal(amount), status)


def test_plan_from_invoices_alone():
    migrated = [_ms("a1", "c1"), _ms("a2", "c1"), _ms("b1", "c2"), _ms("d1", "c3"), ("e1", "c4", Decimal("1.00"))]
    invoices = [
        ExistingInvoice("i2", "c2", DRAFT),
        ExistingInvoice("i3", "c3", CONFIRMED),
        ExistingInvoice("i4a", "c4", DRAFT),
        ExistingInvoice("i4b", "c4", DRAFT),
    ]
    plan = plan_invoicing(migrated, invoices)
    assert [(c.contract_id, c.action, c.invoice_id) for c in plan.contracts] == [
        ("c1", CREATE, None),
        ("c2", CONFIRM, "i2"),
        ("c3", DONE, "i3"),
        ("c4", BLOCKED, None),
    ]
    assert plan.contract("c1").amount == Decimal("20.00")
    assert "2 open draft invoices" in plan.contract("c4").reason


def test_plan_follows_milestone_statuses_and_names_foreign_items():
    migrated = [_ms("a1", "c1"), _ms("b1", "c2"), _ms("d1", "c3"), _ms("e1", "c4"), _ms("f1", "c5"), _ms("g1", "c6")]
    live = [
        _live("a1", "c1", READY),
        _live("x1", "c1", int(InvoiceStatus.NOT_READY)),  # not billable: no harm
        _live("b1", "c2", CREATED),
        _live("d1", "c3", POSTED),
        _live("e1", "c4", READY),
        _live("zz", "c4", READY, "99.00", name="Someone else's"),
        _live("f1", "c5", READY, "11.00"),  # amount differs from the extract
        _live("g1", "c6", CREATED),
        _live("g2", "c6", CREATED),  # on the draft too
    ]
    invoices = [
        ExistingInvoice("old", "c1", CONFIRMED),  # an earlier, unrelated invoice: no harm
        ExistingInvoice("i2", "c2", DRAFT, "PINV-2"),
        ExistingInvoice("i3", "c3", CONFIRMED),
        ExistingInvoice("i6", "c6", DRAFT),
    ]
    plan = plan_invoicing(migrated, invoices, live)
    actions = {c.contract_id: c.action for c in plan.contracts}
    assert actions == {"c1": CREATE, "c2": CONFIRM, "c3": DONE, "c4": BLOCKED, "c5": BLOCKED, "c6": BLOCKED}
    assert plan.contract("c2").invoice_number == "PINV-2"
    assert plan.contract("c4").foreign == ("zz",) and "Someone else's" in plan.contract("c4").reason
    assert "amounts differ" in plan.contract("c5").reason
    assert plan.contract("c6").foreign == ("g2",)


def test_plan_blocks_mixed_states_and_missing_milestones():
    migrated = [_ms("a1", "c1"), _ms("a2", "c1"), _ms("b1", "c2")]
    live = [_live("a1", "c1", READY), _live("a2", "c1", POSTED)]
    plan = plan_invoicing(migrated, [], live)
    assert "different invoice states" in plan.contract("c1").reason
    assert "not on this contract" in plan.contract("c2").reason
    assert plan.summary() == "2 contracts: 0 to create, 0 to confirm, 0 done, 2 blocked"


def test_a_frame_of_the_validated_extract_is_accepted():
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame(
        {"milestone_id": ["A1", "b1"], "contract_id": ["C1", "c1"], "amount": [Decimal("1.50"), Decimal("2.25")]},
        schema={"milestone_id": pl.String, "contract_id": pl.String, "amount": pl.Decimal(38, 4)},
    )
    plan = plan_invoicing(frame, [])
    assert [(c.contract_id, c.amount, sorted(c.milestone_ids)) for c in plan.contracts] == [
        ("c1", Decimal("3.75"), ["a1", "b1"])
    ]


async def test_a_draft_whose_lines_were_changed_is_not_confirmed(sim):
    """Someone edits a draft's line between create and confirm: the draft no longer holds exactly
    the migrated amounts, so nothing is confirmed (exit 1), naming the contract line."""
    migrated = await migrate(sim, contracts=1, per_contract=2)
    await stop_maps(sim)
    session = await clients(sim)
    plan = await prepare_invoicing(session, migrated)
    await collect(create_invoices(session, plan, polling=FAST))
    (invoice_id,) = [i for _c, i, _s, _t in invoices_of(sim, [migrated[0].contract_id])]
    detail = (await sim.dv("GET", f"invoicedetails?$filter=_invoiceid_value eq {invoice_id}")).json()["value"][0]
    r = await sim.dv("PATCH", f"invoicedetails({detail['invoicedetailid']})", json={"extendedamount": 1})
    assert r.status_code == 204, r.text
    since = await last_seq(sim)
    with pytest.raises(DraftMismatch) as err:
        await collect(confirm_invoices(session, plan, polling=FAST))
    assert "lines differ" in str(err.value) and detail["_salesorderdetailid_value"] in str(err.value)
    assert err.value.exit_code == 1 and await writes(sim, since) == []
    assert [s for _c, _i, s, _t in invoices_of(sim, [migrated[0].contract_id])] == [DRAFT]


def test_polling_bounds_are_checked():
    with pytest.raises(ValueError):
        Polling(timeout_s=0)
    with pytest.raises(ValueError):
        Polling(first_wait_s=5, max_wait_s=1)
