"""Steps about the dual-write maps after the cutover (read-only evidence; see
:mod:`cutover.runbook.probes` for the rules).

- ``Given the dual-write maps of the environment``
- ``Then the milestone map runs its original version`` — the original version is the one the
  runbook recorded before the map was changed (read from the journal), else the version the
  cutover version was saved from;
- ``Then the milestone, actuals and invoices maps are running`` (or any of them, e.g.
  ``Then the invoices map is running``).

Where this account cannot read the map tables (401/403/404), the step raises
:class:`~cutover.checks.outcomes.NotVerified`: the scenario is "not verified", never passed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pytest_bdd import given, parsers, then

from cutover.dualwrite_state import ACTUALS_MAP, INVOICES_MAP, MILESTONE_MAP
from cutover.errors import InputError
from cutover.journal import JOURNAL_FILE, Journal
from cutover.runbook.probes import ORIGINAL_KEY, maps_running, original_version_running

from ..outcomes import Finding, NotVerified

FIGURE = "original_version"  # the figure record_original_version journals
MAP_WORDS = {"milestone": MILESTONE_MAP, "actuals": ACTUALS_MAP, "invoices": INVOICES_MAP}


def _recorded_original(cutover) -> dict | None:
    """The original version the runbook recorded (the last ``original_version`` in the journal)."""
    ws = cutover.settings.workspace
    if not (ws / JOURNAL_FILE).exists():
        return None
    found = None

    def walk(value: Any) -> None:
        nonlocal found
        if isinstance(value, dict):
            if isinstance(value.get(FIGURE), dict) and value[FIGURE].get("version"):
                found = value[FIGURE]
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    with Journal.open(ws, create=False) as journal:
        for entry in journal.entries(cutover.settings.env):
            walk(entry.data)
    return found


def _judge(evidence_of_probe, evidence) -> None:
    evidence.figure("evidence", evidence_of_probe.summary)
    for key, value in evidence_of_probe.figures.items():
        evidence.figure(key, value)
    if evidence_of_probe.status == "not-verified":
        raise NotVerified(evidence_of_probe.summary)
    if evidence_of_probe.status == "failed":
        raise Finding(evidence_of_probe.summary)


@given("the dual-write maps of the environment", target_fixture="maps_context")
def _(cutover, evidence):
    env = cutover.environment
    state: dict[str, Any] = {}
    recorded = _recorded_original(cutover)
    if recorded:
        state[ORIGINAL_KEY] = recorded
        evidence.figure("original version recorded in the journal", recorded.get("version"))
    return SimpleNamespace(session=env.session, profile=env.profile, state=state)


@then("the milestone map runs its original version")
def _(cutover, maps_context, evidence):
    _judge(cutover.environment.run(original_version_running(maps_context)), evidence)


@then(parsers.re(r"the (?P<names>.+?) maps? (?:are|is) running"))
def _(cutover, maps_context, evidence, names):
    words = [w.strip() for w in names.replace(" and ", ",").split(",") if w.strip()]
    unknown = [w for w in words if w not in MAP_WORDS]
    if unknown:
        raise InputError(f"unknown map {', '.join(unknown)} (known: {', '.join(MAP_WORDS)})")
    probe = maps_running(tuple(MAP_WORDS[w] for w in words))
    _judge(cutover.environment.run(probe(maps_context)), evidence)
