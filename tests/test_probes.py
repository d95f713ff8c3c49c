"""The runbook's read-only dual-write probes (cutover.runbook.probes) against the simulator:
map state from DualWriteProjectConfigurations, the asynchronous invoice integration, and the
milestone map's versions. No mocks: the maps are changed through the simulator's dual-write
page (and, for a mixed reading no UI produces, one configuration row written directly)."""

from __future__ import annotations

import pytest

from cutover.dualwrite_state import (
    ACTUALS_MAP,
    INVOICES_MAP,
    MILESTONE_MAP,
    THREE_MAPS,
    ConfigurationRow,
    map_state_evidence,
    map_states,
)
from cutover.engine import RunContext
from cutover.fno import FnoClient
from cutover.runbook.probes import (
    ORIGINAL_KEY,
    cutover_version_running,
    invoice_integration_async,
    maps_running,
    maps_stopped,
    milestone_map_stopped,
    original_version_running,
    read_milestone_map_versions,
    record_original_version,
    three_maps_running,
    three_maps_stopped,
    version_key,
)
from cutover.transport import Transport
from tests.conftest import FNO, READER, WRITER
from tests.dataverse_harness import HarnessToken, client, no_sleep

TRANSSTATUS = {
    "fno_field": "TRANSSTATUS",
    "dataverse_field": "msdyn_invoicestatus",
    "direction": "dataverse_to_fno",
    "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
}


class _Clients:
    def __init__(self, dataverse, fno):
        self.dataverse, self.fno = dataverse, fno


def context(sim, tmp_path, who=READER) -> RunContext:
    """A run context over the simulator, as verification opens it: the read-only identity."""
    fno = FnoClient(
        Transport(
            f"{sim.client.base_url}{FNO}",
            HarnessToken(sim, who),
            environment="rehearsal",
            client=sim.client,
            sleep=no_sleep,
            read_only=True,
        )
    )
    return RunContext(
        env="rehearsal",
        profile=None,
        workspace=tmp_path,
        journal=None,
        session=_Clients(client(sim, pool=(who,), read_only=True), fno),
    )


async def map_op(sim, name: str, op: str, **body) -> None:
    r = await sim.admin("POST", f"maps/{name}/{op}", **({"json": body} if body else {}))
    assert r.status_code == 200, r.text


# --- map state --------------------------------------------------------------------------------


async def test_running_maps_read_running_and_not_stopped(sim, tmp_path):
    ctx = context(sim, tmp_path)
    running = await three_maps_running(ctx)
    assert running.status == "ok" and "invoices reads running (2 rows Enabled)" in running.summary
    stopped = await three_maps_stopped(ctx)
    assert stopped.status == "failed"
    for name in THREE_MAPS:
        assert f"{name} is running" in stopped.summary
    assert stopped.figures["maps"][INVOICES_MAP]["rows"] == {
        "ProjectInvoiceProposalV2_invoices": "Enabled",
        "ProjectInvoiceProposalV2_invoices_reverse": "Enabled",
    }


async def test_stopped_maps_read_stopped(sim, tmp_path):
    ctx = context(sim, tmp_path)
    await map_op(sim, MILESTONE_MAP, "stop")
    assert (await milestone_map_stopped(ctx)).status == "ok"
    partly = await three_maps_stopped(ctx)
    assert partly.status == "failed" and MILESTONE_MAP not in partly.summary.split(":", 1)[1].split(" is ")[0]
    assert "msdyn_actuals is running" in partly.summary and "invoices is running" in partly.summary
    for name in (ACTUALS_MAP, INVOICES_MAP):
        await map_op(sim, name, "stop")
    evidence = await three_maps_stopped(ctx)
    assert evidence.status == "ok" and evidence.summary.count("reads stopped (2 rows Disabled)") == 3
    assert (await maps_running([INVOICES_MAP])(ctx)).status == "failed"


def test_a_map_with_one_row_disabled_is_neither():
    """Mixed rows (one Disabled, one Enabled): neither stopped nor running, naming each row. The
    simulator mirrors one state onto both rows (it re-syncs them on every read), so no rehearsal
    produces this reading; the rule is checked on the rows as F&O would serve them."""
    rows = [
        ConfigurationRow.from_row(
            {"ProjectName": p, "ExternalEntityName": INVOICES_MAP, "Status": s, "AsyncMode": "RequiredSync"}
        )
        for p, s in (
            ("ProjectInvoiceProposalV2_invoices", "Enabled"),
            (
                "ProjectInvoiceProposalV2_invoices_reverse",
                "Microsoft.Dynamics.DataEntities.DualWriteProjectStatus'Disabled'",
            ),
        )
    ]
    states = map_states(rows, [INVOICES_MAP, ACTUALS_MAP])
    assert states[INVOICES_MAP].state == "neither" and states[ACTUALS_MAP].state == "absent"
    for want in ("stopped", "running"):
        evidence = map_state_evidence({INVOICES_MAP: states[INVOICES_MAP]}, want)
        assert evidence.status == "failed"
        assert "ProjectInvoiceProposalV2_invoices reads Enabled" in evidence.summary
        assert "ProjectInvoiceProposalV2_invoices_reverse reads Disabled" in evidence.summary
    absent = map_state_evidence({ACTUALS_MAP: states[ACTUALS_MAP]}, "stopped")
    assert absent.status == "not-verified" and "no DualWriteProjectConfigurations row" in absent.summary


async def test_a_paused_map_reads_queueing_and_is_neither(sim, tmp_path):
    await map_op(sim, ACTUALS_MAP, "pause")
    ctx = context(sim, tmp_path)
    for probe in (maps_stopped([ACTUALS_MAP]), maps_running([ACTUALS_MAP])):
        evidence = await probe(ctx)
        assert evidence.status == "failed" and "msdyn_actuals is neither" in evidence.summary
        assert evidence.summary.count("reads Queueing") == 2


async def test_hidden_map_state_is_not_verified(sim, tmp_path):
    r = await sim.admin("PUT", "settings", json={"map_state_hidden_from": [READER[0]]})
    assert r.status_code == 200, r.text
    ctx = context(sim, tmp_path)
    for probe in (three_maps_stopped, three_maps_running, milestone_map_stopped, invoice_integration_async):
        evidence = await probe(ctx)
        assert evidence.status == "not-verified", probe
        assert "cannot read map state" in evidence.summary and "403" in evidence.summary
    # another identity still reads it
    assert (await three_maps_running(context(sim, tmp_path, WRITER))).status == "ok"


async def test_no_session_is_not_verified(tmp_path):
    ctx = RunContext(env="x", profile=None, workspace=tmp_path, journal=None)
    assert (await three_maps_stopped(ctx)).status == "not-verified"
    assert (await original_version_running(ctx)).status == "not-verified"


# --- the asynchronous invoice integration ------------------------------------------------------


async def test_invoice_integration_async(sim, tmp_path):
    ctx = context(sim, tmp_path)
    evidence = await invoice_integration_async(ctx)
    assert evidence.status == "ok" and "synchronous" in evidence.summary
    assert (await sim.admin("PUT", "settings", json={"dualwrite_async_invoicing": True})).status_code == 200
    evidence = await invoice_integration_async(ctx)
    assert evidence.status == "failed"
    assert evidence.summary.startswith(
        "the asynchronous invoice integration is on: the cutover procedure does not cover it"
    )
    assert set(evidence.figures["async_modes"].values()) == {"RequiredAsync"}
    assert len(evidence.figures["async_modes"]) == 4  # invoices and actuals, two rows each


# --- map versions -----------------------------------------------------------------------------


async def save_cutover_version(sim, version: str = "1.0.0.6") -> None:
    await map_op(sim, MILESTONE_MAP, "stop")
    await map_op(sim, MILESTONE_MAP, "save-as", version=version, description="cutover", add_mappings=[TRANSSTATUS])


async def test_cutover_version_running(sim, tmp_path):
    ctx = context(sim, tmp_path)
    before = await cutover_version_running(ctx)
    assert before.status == "failed" and before.figures["running_version"] == "1.0.0.5"
    assert "TRANSSTATUS" in before.summary
    await save_cutover_version(sim)
    evidence = await cutover_version_running(ctx)
    assert evidence.status == "ok" and evidence.figures["running_version"] == "1.0.0.6"
    # the original version (the one the cutover version was saved from) is recorded
    assert ctx.state[ORIGINAL_KEY]["version"] == "1.0.0.5"
    assert evidence.figures["original_version"]["name"] == MILESTONE_MAP


async def test_original_version_running_with_a_recorded_original(sim, tmp_path):
    ctx = context(sim, tmp_path)
    recorded = await record_original_version(ctx)
    assert recorded.status == "ok" and recorded.figures["original_version"]["version"] == "1.0.0.5"
    assert ctx.state[ORIGINAL_KEY]["id"] == recorded.figures["original_version"]["id"]
    await save_cutover_version(sim)
    evidence = await original_version_running(ctx)
    assert evidence.status == "failed" and "runs version 1.0.0.6 (a cutover version" in evidence.summary
    # another version without the value map is still not the original
    await map_op(sim, MILESTONE_MAP, "version", version="1.0.0.5")
    await map_op(sim, MILESTONE_MAP, "save-as", version="1.0.0.7", description="something else")
    assert (await original_version_running(ctx)).status == "failed"
    await map_op(sim, MILESTONE_MAP, "version", version="1.0.0.5")
    evidence = await original_version_running(ctx)
    assert evidence.status == "ok" and "original version 1.0.0.5 again" in evidence.summary


async def test_original_version_running_inferred_without_a_record(sim, tmp_path):
    ctx = context(sim, tmp_path)
    assert (await original_version_running(ctx)).status == "not-verified"  # no cutover version yet: cannot tell
    await save_cutover_version(sim)
    assert (await original_version_running(ctx)).status == "failed"  # still on the cutover version
    await map_op(sim, MILESTONE_MAP, "version", version="1.0.0.5")
    evidence = await original_version_running(ctx)
    assert evidence.status == "ok" and evidence.figures["original_version"]["version"] == "1.0.0.5"
    versions = await read_milestone_map_versions(ctx.session.dataverse)
    assert [(v.version, v.cutover) for v in versions.versions] == [("1.0.0.5", False), ("1.0.0.6", True)]
    assert versions.running == "1.0.0.5"


async def test_record_original_version_when_the_cutover_version_already_runs(sim, tmp_path):
    await save_cutover_version(sim)
    ctx = context(sim, tmp_path)
    evidence = await record_original_version(ctx)
    assert evidence.status == "ok" and evidence.figures["inferred"] is True
    assert ctx.state[ORIGINAL_KEY]["version"] == "1.0.0.5"


async def test_hidden_map_versions_are_not_verified(sim, tmp_path):
    await sim.admin("PUT", "settings", json={"map_state_hidden_from": ["*"]})
    ctx = context(sim, tmp_path)
    for probe in (cutover_version_running, original_version_running, record_original_version):
        evidence = await probe(ctx)
        assert evidence.status == "not-verified", probe
        assert evidence.summary.startswith("map versions cannot be read here"), evidence.summary
        assert "403" in evidence.summary


@pytest.mark.parametrize(("a", "b"), [("1.0.0.9", "1.0.0.10"), ("1.0.0.5", "1.0.1.0"), ("2.0", "cutover-1")])
def test_version_order(a, b):
    assert version_key(a) < version_key(b)
