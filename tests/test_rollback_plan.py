"""The pure half of the rollback: what the journal says the run created, and the plan."""

from __future__ import annotations

from decimal import Decimal

from cutover.domain import InvoiceStatus, ProjectInvoiceStatus
from cutover.engine import StepState
from cutover.invoicing import ExistingInvoice, LiveMilestone, LiveState
from cutover.journal import Journal
from cutover.rollback import CREATED_IDS, EXISTING_IDS, RunRecord, map_undo_steps, plan_rollback, read_run
from cutover.runbook.steps import RUNBOOK

ENV = "rehearsal"
A, B, C, D = (f"00000000-0000-0000-0000-00000000000{n}" for n in range(1, 5))
K1, K2 = "10000000-0000-0000-0000-000000000001", "10000000-0000-0000-0000-000000000002"
INV1, INV2 = "20000000-0000-0000-0000-000000000001", "20000000-0000-0000-0000-000000000002"
READY, CREATED, POSTED = int(InvoiceStatus.READY), int(InvoiceStatus.CREATED), int(InvoiceStatus.POSTED)
DRAFT, CONFIRMED = int(ProjectInvoiceStatus.DRAFT), int(ProjectInvoiceStatus.CONFIRMED)


def _progress(journal: Journal, step: str, message: str, **figures) -> None:
    journal.append("step.progress", env=ENV, step=step, data={"message": message, "figures": figures})


def _started(journal: Journal, step: str) -> None:
    journal.append("step.started", env=ENV, step=step, data={})


def test_created_ids_are_exact_when_the_plan_is_journaled_and_a_resume_plans_them_identical(tmp_path):
    with Journal.open(tmp_path) as journal:
        _started(journal, "migrate.milestones")
        _progress(journal, "migrate.milestones", "plan", **{CREATED_IDS: [A, B], EXISTING_IDS: [C]})
        _progress(journal, "migrate.milestones", "ChunkLoaded", succeeded=1, failed=0, ids=[A], done=1, total=2)
        _started(journal, "migrate.milestones")  # resumed after a crash: A landed, B did not
        _progress(journal, "migrate.milestones", "plan", **{CREATED_IDS: [B], EXISTING_IDS: [A, C]})
        record = read_run(journal, ENV)
    assert record.basis == "planned"
    assert record.created == {A, B} and record.existing == {C} and not record.unproven


def test_created_ids_are_reconstructed_from_the_create_jobs_chunks(tmp_path):
    with Journal.open(tmp_path) as journal:
        _started(journal, "migrate.milestones")
        _progress(journal, "migrate.milestones", "PhaseStarted", phase="load", detail="2 to create, 1 to update")
        _progress(journal, "migrate.milestones", "ChunkLoaded", succeeded=1, failed=1, ids=[A], done=2, total=3)
        _progress(journal, "migrate.milestones", "ChunkLoaded", succeeded=1, failed=0, ids=[C], done=3, total=3)
        _started(journal, "migrate.milestones")  # the failed create, sent again on resume
        _progress(journal, "migrate.milestones", "PhaseStarted", phase="load", detail="1 to create, 0 to update")
        _progress(journal, "migrate.milestones", "PhaseStarted", phase="resolve", detail="reading back 1 record(s)")
        _progress(journal, "migrate.milestones", "ChunkLoaded", succeeded=1, failed=0, ids=[D], done=1, total=1)
        _started(journal, "invoice.create")
        _progress(journal, "invoice.create", "sent", action="create", contract_ids=[K1], invoice_id=INV1.upper())
        _progress(journal, "invoice.create", "created", drafts={K2: INV2})
        record = read_run(journal, ENV)
    assert record.basis == "load-chunks"
    assert record.created == {A}  # C was the update, D came from a read-back round: both kept
    assert record.unproven == {C, D}
    assert dict(record.drafts) == {INV1: K1, INV2: K2}
    assert not record.confirms_sent


def _state(*milestones: LiveMilestone, invoices=()) -> LiveState:
    return LiveState(tuple(invoices), tuple(milestones), (), {K1: "PRJC-1", K2: "PRJC-2"})


def _ms(mid: str, contract: str, status: int) -> LiveMilestone:
    return LiveMilestone(mid, contract, None, mid, Decimal("10.00"), status)


def test_the_plan_deletes_only_the_runs_drafts_and_milestones():
    record = RunRecord(ENV, frozenset({A, B}), existing=frozenset({C}), drafts={INV1: K1}, basis="planned")
    live = _state(
        _ms(A, K1, CREATED),
        _ms(B, K2, READY),
        _ms(C, K1, READY),
        invoices=[ExistingInvoice(INV1, K1, DRAFT, "PINV-1")],
    )
    plan = plan_rollback(record, live)
    assert not plan.refused
    assert [i.invoice_id for i in plan.invoices] == [INV1]
    assert plan.milestones == (A, B)
    assert set(plan.kept) == {C}


def test_the_plan_finds_an_unjournaled_draft_holding_only_our_milestones():
    record = RunRecord(ENV, frozenset({A}), basis="load-chunks")
    live = _state(_ms(A, K1, CREATED), _ms(C, K1, READY), invoices=[ExistingInvoice(INV1, K1, DRAFT)])
    assert [i.invoice_id for i in plan_rollback(record, live).invoices] == [INV1]


def test_the_plan_refuses_a_draft_that_holds_other_items_and_the_point_of_no_return():
    record = RunRecord(ENV, frozenset({A}), basis="load-chunks")
    foreign = _state(_ms(A, K1, CREATED), _ms(C, K1, CREATED), invoices=[ExistingInvoice(INV1, K1, DRAFT, "PINV-9")])
    plan = plan_rollback(record, foreign)
    assert plan.refused and not plan.invoices and not plan.milestones
    assert "PRJC-1" in plan.refused[0] and "PINV-9" in plan.refused[0] and "did not create" in plan.refused[0]

    posted = plan_rollback(record, _state(_ms(A, K1, POSTED), invoices=[ExistingInvoice(INV1, K1, CONFIRMED)]))
    assert any("Customer invoice posted" in r and "point of no return" in r for r in posted.refused)

    sent = RunRecord(ENV, frozenset({A}), drafts={INV1: K1}, confirms_sent=(INV1,))
    plan = plan_rollback(sent, _state(_ms(A, K1, CREATED), invoices=[ExistingInvoice(INV1, K1, DRAFT)]))
    assert plan.refused and "invoice.confirm sent a confirmation" in plan.refused[0]


def test_nothing_left_is_nothing_to_do():
    plan = plan_rollback(RunRecord(ENV, frozenset({A, B})), _state())
    assert plan.nothing_to_do and plan.absent == 2 and plan.summary().startswith("nothing to roll back")


def test_map_steps_are_listed_in_the_order_to_undo_them():
    done = StepState(started=True, finished=True, attested_by="rehearsal")
    states = {
        s: done for s in ("map.stop-milestones", "map.add-transstatus", "map.save-cutover-version", "maps.stop-three")
    }
    undo = map_undo_steps(states)
    assert [u.step for u in undo] == ["map.save-cutover-version", "maps.stop-three"]
    assert undo[0].covers == ("map.add-transstatus",) and undo[1].covers == ("map.stop-milestones",)
    assert undo[1].click_path == RUNBOOK.step("maps.restart-three").click_path
    assert map_undo_steps({"map.stop-milestones": done})[0].click_path[-1] == "Run"
    assert map_undo_steps({"map.stop-milestones": StepState(started=True)}) == ()
