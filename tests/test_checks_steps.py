"""The step library, tested the pytest-bdd way: tiny feature files written with
``pytester.makefile(".feature", …)``, run with ``-p cutover.checks.plugin`` — in a child
process (``runpytest_subprocess``): an in-process run forgets the modules it imported, and
polars then meets two copies of its own types."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from . import verify_worlds
from .verify_worlds import ENV

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)

pytest_plugins = ["pytester"]


@pytest.fixture
def clean_world(worlds):
    """Made before ``pytester`` (which forgets, at its teardown, every module imported after it
    was set up): a rehearsal inside a pytester test would leave polars half-imported."""
    return worlds.world()


@pytest.fixture
def invoiced_world(worlds):
    return worlds.world("invoices-map-left-running")


BIND = "from pytest_bdd import scenarios\n\nscenarios('.')\n"


def _options(world, report) -> list[str]:
    return [
        "-p",
        "cutover.checks.plugin",
        f"--cutover-workspace={world.workspace}",
        f"--cutover-env={ENV}",
        f"--cutover-source={world.extract}",
        f"--cutover-report={report}",
        "-p",
        "no:cacheprovider",
    ]


def _results(report) -> dict[str, dict]:
    data = json.loads((report / "results.json").read_text())
    return {
        f"{s['scenario']}{' ' + ' '.join(s['example'].values()) if s['example'] else ''}": s for s in data["scenarios"]
    }


def test_not_verified_is_its_own_outcome_counted_apart_and_never_a_pass(pytester, tmp_path):
    pytester.makeconftest(
        """
from pytest_bdd import then
from cutover.checks.outcomes import Finding, NotVerified

@then("the evidence cannot be read")
def _():
    raise NotVerified("this account cannot read the map state (403)")

@then("a customer moved")
def _():
    raise Finding("customer US-001 in USMF (USD): +1,200.00")

@then("all is well")
def _():
    pass
"""
    )
    pytester.makefile(
        ".feature",
        outcomes="""\
Feature: Outcomes
  Scenario: Hidden
    Then the evidence cannot be read
  Scenario: Moved
    Then a customer moved
  Scenario: Fine
    Then all is well
""",
    )
    pytester.makepyfile(test_outcomes=BIND)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(
        "-p", "cutover.checks.plugin", f"--cutover-report={report}", f"--junitxml={report}/j.xml"
    )
    assert result.ret == 1  # a not-verified scenario fails the run
    result.stdout.fnmatch_lines(["*NOT VERIFIED: Hidden: this account cannot read the map state (403)*"])
    result.stdout.fnmatch_lines(["*cutover scenarios: 1 passed, 1 failed, 1 not verified*"])
    outcomes = {name: s["outcome"] for name, s in _results(report).items()}
    assert outcomes == {"Hidden": "not verified", "Moved": "failed", "Fine": "passed"}
    failures = {
        case.get("name"): case.find("failure").get("message")
        for case in ET.parse(report / "j.xml").getroot().iter("testcase")
        if case.find("failure") is not None
    }
    assert failures == {
        "test_hidden": "NOT VERIFIED: this account cannot read the map state (403)",
        "test_moved": "customer US-001 in USMF (USD): +1,200.00",
    }


def test_balance_steps_take_a_legal_entity_and_a_tolerance_from_examples(invoiced_world, pytester, tmp_path):
    pytester.makefile(
        ".feature",
        balances="""\
@ar @gl
Feature: Balances per legal entity
  Scenario Outline: Receivables
    Given the customer transactions before and after the cutover
    Then no customer balance in <legal entity> moved by more than <tolerance>
    And no customer transaction was posted in <legal entity>

    Examples:
      | legal entity | tolerance |
      | USMF         | 0.00      |
      | DEMF         | 100000000 |

  Scenario: Ledger
    Given the general ledger before and after the cutover
    Then no main account balance in USMF and DEMF moved by more than the scope's tolerance
""",
    )
    pytester.makepyfile(test_balances=BIND)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(*_options(invoiced_world, report))
    assert result.ret == 1
    scenarios = _results(report)
    usmf, demf, ledger = (
        scenarios["Receivables USMF 0.00"],
        scenarios["Receivables DEMF 100000000"],
        scenarios["Ledger"],
    )
    assert usmf["outcome"] == "failed" and "customer US-" in usmf["message"] and " in USMF (" in usmf["message"]
    assert "DE-" not in usmf["message"]
    assert [s["status"] for s in usmf["steps"]] == ["passed", "failed", "not run"]
    # DEMF's balances are within the wide tolerance, but the posted transactions still fail it
    assert demf["outcome"] == "failed" and demf["steps"][1]["status"] == "passed" and "voucher CIV-" in demf["message"]
    assert ledger["outcome"] == "failed" and "main account 130100 in DEMF" in ledger["message"]
    assert usmf["figures"]["tolerance"] == "0.00" and ledger["figures"]["legal entities"] == "USMF, DEMF"
    (table,) = [t for t in usmf["tables"] if t["name"] == "ar_balance_changes"]
    assert (report / table["csv"]).is_file() and table["total_rows"] > 0


def test_milestone_steps_pass_on_a_clean_rehearsal(clean_world, pytester, tmp_path):
    pytester.makefile(
        ".feature",
        ms="""\
Feature: Milestones
  Scenario: Dataverse with a wider tolerance
    Given the invoiced milestones of the legacy extract
    When they are compared with the milestones in Dataverse
    Then none of them is missing in Dataverse
    And each has its legacy amount and date in Dataverse within an amount tolerance of 0.01 and a date tolerance of 1 day
    And every one of them reads "Customer invoice posted" in Dataverse
""",
    )
    pytester.makepyfile(test_ms=BIND)
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(*_options(clean_world, report))
    assert result.ret == 0, result.stdout.str()[-2000:]
    (scenario,) = _results(report).values()
    assert scenario["figures"]["amount tolerance"] == "0.01" and scenario["figures"]["date tolerance (days)"] == 1
    assert scenario["figures"]["read Customer invoice posted"] == scenario["figures"]["invoiced legacy milestones"] > 0


def test_a_float_in_scope_toml_is_bad_input_naming_the_file(clean_world, pytester, tmp_path):
    pytester.makefile(".toml", scope="[tolerances]\ncustomer_balance = 0.01\n")
    pytester.makefile(
        ".feature",
        s="Feature: S\n  Scenario: R\n    Given the customer transactions before and after the cutover\n"
        "    Then no customer balance in USMF moved by more than the scope's tolerance\n",
    )
    pytester.makepyfile(test_s=BIND)
    report = tmp_path / "report"
    pytester.runpytest_subprocess(*_options(clean_world, report), f"--cutover-features={pytester.path}")
    (scenario,) = _results(report).values()
    assert scenario["outcome"] == "error" and scenario["exit_code"] == 2
    assert "scope.toml" in scenario["message"] and "binary float" in scenario["message"]


@pytest.mark.parametrize("marker", ["milestones", "ar", "gl", "balances", "maps"])
def test_the_feature_tags_are_registered_markers(pytester, marker):
    result = pytester.runpytest_subprocess("-p", "cutover.checks.plugin", "--markers")
    result.stdout.fnmatch_lines([f"@pytest.mark.{marker}:*"])
