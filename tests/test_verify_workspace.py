"""An accountant's own scenarios: `.feature` files and a scope.toml in <workspace>/features/
run beside the shipped ones, without Python; a step the library does not know is bad input."""

from __future__ import annotations

import json
import shutil

from cutover.verification import REPORTS_DIR, run_verification

from . import verify_worlds
from .verify_worlds import ENV

worlds = verify_worlds.worlds  # the session's shared cache of rehearsed worlds (a fixture)

OWN_FEATURE = """\
@ar @audit
Feature: The auditor's own receivables check
  Scenario Outline: Customer balances of one legal entity are unchanged within the audit's tolerance
    Given the customer transactions before and after the cutover
    Then no customer balance in <legal entity> moved by more than <tolerance>

    Examples:
      | legal entity | tolerance |
      | USMF         | 0.01      |
      | DEMF         | 0.00      |
"""

OWN_SCOPE = """\
[tolerances]
customer_balance = "0.05"
"""


def test_a_scenario_added_in_the_workspace_runs_beside_the_shipped_ones(worlds, tmp_path):
    world = worlds.world()
    ws = tmp_path / "ws"
    shutil.copytree(world.workspace, ws)
    (ws / "features").mkdir()
    (ws / "features" / "audit.feature").write_text(OWN_FEATURE)
    (ws / "features" / "scope.toml").write_text(OWN_SCOPE)

    result = run_verification(ws, ENV, world.extract, extra_args=("-m", "ar"))

    assert result.report_dir.parent == ws / REPORTS_DIR  # a new folder by default
    assert result.exit_code == 0, "\n".join(result.lines())
    mine = [s for s in result.scenarios if "audit" in s.tags]
    assert [(s.example["legal entity"], s.outcome) for s in mine] == [("USMF", "passed"), ("DEMF", "passed")]
    assert {s.scenario for s in result.scenarios if "audit" not in s.tags} == {
        "Customer balances are unchanged",
        "No customer transaction was posted during the cutover",
    }  # -m ar selected the receivables scenarios only
    run = json.loads((result.report_dir / "run.json").read_text())
    assert {"features/workspace/audit.feature", "features/workspace/scope.toml"} <= {f["path"] for f in run["features"]}
    assert run["scope"]["tolerances"]["customer_balance"] == "0.05"  # the workspace's scope overrides the shipped one
    assert (result.report_dir / "features" / "workspace" / "audit.feature").read_text() == OWN_FEATURE


def test_a_step_the_library_does_not_know_is_bad_input_not_a_failed_check(worlds, tmp_path):
    world = worlds.world()
    ws = tmp_path / "ws"
    shutil.copytree(world.workspace, ws)
    (ws / "features").mkdir()
    (ws / "features" / "typo.feature").write_text(
        "@typo\nFeature: A typo\n  Scenario: Balances\n    Given the customer balances were looked at by someone\n"
    )
    result = run_verification(ws, ENV, world.extract, report_dir=tmp_path / "r", extra_args=("-m", "typo"))
    assert [s.outcome for s in result.scenarios] == ["error"]
    assert result.exit_code == 2 and "step" in result.scenarios[0].message
