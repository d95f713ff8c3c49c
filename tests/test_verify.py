"""`cutover verify` against rehearsals: a clean one passes every scenario, and each fault, with
map state withheld from the runbook ("blind"), fails exactly the scenarios that should catch it.

The rehearsed worlds are made once per session (tests/verify_worlds.py); each verification
runs the real suite in a child process against the world's own simulator, read-only.
"""

from __future__ import annotations

import httpx
import pytest

from cutover.simprocess import SimulatorProcess
from cutover.verification import run_verification

from . import verify_worlds
from .verify_worlds import ENV

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)

AR_BALANCES = "Customer balances are unchanged"
AR_POSTED = "No customer transaction was posted during the cutover"
GL_BALANCES = "General ledger balances are unchanged per main account"
GL_POSTED = "No voucher was posted during the cutover"
IN_DATAVERSE = "Every invoiced legacy milestone exists in Dataverse exactly once"
NOT_INVOICED = "No un-invoiced legacy milestone was migrated"
POSTED = "Migrated milestones are Customer invoice posted"
IN_FNO = "Milestones reached Finance and Operations as Invoiced"
TOTALS = "The contracts' invoiced totals include the migrated milestones"
MAPS = "The dual-write maps are back on their original version and running"
ALL = {AR_BALANCES, AR_POSTED, GL_BALANCES, GL_POSTED, IN_DATAVERSE, NOT_INVOICED, POSTED, IN_FNO, TOTALS, MAPS}


def _by_outcome(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in result.scenarios:
        out.setdefault(s.outcome, set()).add(s.scenario)
    return out


def _message(result, scenario: str) -> str:
    return " ".join(s.message for s in result.scenarios if s.scenario == scenario)


def test_a_clean_rehearsal_passes_every_scenario(worlds):
    result = worlds.verified()
    assert result.exit_code == 0, "\n".join(result.lines())
    assert result.verdict == "passed"
    assert {s.scenario for s in result.scenarios} == ALL
    assert _by_outcome(result) == {"passed": ALL}


@pytest.mark.parametrize(
    ("fault", "failing"),
    [
        ("invoices-map-left-running", {AR_BALANCES, AR_POSTED, GL_BALANCES, GL_POSTED}),
        ("actuals-map-left-running", {GL_BALANCES, GL_POSTED}),
        ("milestone-map-left-running", {IN_FNO}),
        ("map-version-not-reverted", {MAPS}),
        ("maps-not-restarted", {MAPS}),
    ],
)
def test_a_blind_fault_fails_exactly_the_scenarios_that_should_catch_it(worlds, fault, failing):
    result = worlds.verified(fault)
    outcomes = _by_outcome(result)
    assert outcomes.get("failed", set()) == failing, "\n".join(result.lines())
    assert outcomes.get("passed", set()) == ALL - failing
    assert result.exit_code == 1 and result.verdict == "failed"


def test_posted_customer_invoices_are_named_by_voucher_customer_and_amount(worlds):
    result = worlds.verified("invoices-map-left-running")
    posted = _message(result, AR_POSTED)
    assert "voucher CIV-" in posted and "for customer " in posted and ("EUR +" in posted or "USD +" in posted)
    balances = _message(result, AR_BALANCES)
    assert "customer " in balances and " before, " in balances and " after (+" in balances
    ledger = _message(result, GL_POSTED)
    assert "voucher CIV-" in ledger and "main account 130100" in ledger
    assert "assert False" not in posted + balances + ledger


def test_billed_actuals_fail_the_ledger_and_not_receivables(worlds):
    result = worlds.verified("actuals-map-left-running")
    assert "voucher PSA-" in _message(result, GL_POSTED)
    assert result.outcome_of(AR_BALANCES) == ["passed"] and result.outcome_of(AR_POSTED) == ["passed"]


def test_the_map_faults_are_named(worlds):
    assert "cutover version" in _message(worlds.verified("map-version-not-reverted"), MAPS)
    assert "running" in _message(worlds.verified("maps-not-restarted"), MAPS)


def test_hidden_map_state_is_not_verified_and_the_verdict_incomplete(worlds):
    result = worlds.verified(blind_verify=True)
    assert result.outcome_of(MAPS) == ["not verified"], "\n".join(result.lines())
    assert _by_outcome(result)["passed"] == ALL - {MAPS}
    assert result.verdict == "incomplete" and result.exit_code == 1
    assert "cannot be read" in _message(result, MAPS) and "403" in _message(result, MAPS)


def test_verify_sends_no_write(worlds, tmp_path):
    """The world's simulator is served by the test, so its request log outlives verify's session."""
    world = worlds.world()
    server = SimulatorProcess(world.db)
    with server as url:
        result = run_verification(world.workspace, ENV, world.extract, report_dir=tmp_path / "report")
        log = httpx.get(f"{url}/_sim/requests", headers=server.admin_headers(), timeout=30).json()
    assert result.exit_code == 0, "\n".join(result.lines())
    methods = {entry["method"] for entry in log}
    assert log and methods == {"GET"}, sorted(methods)
    paths = " ".join(entry["path"] for entry in log)
    assert "msdyn_contractlinescheduleofvalues" in paths and "ProjectContractLineMilestones" in paths
