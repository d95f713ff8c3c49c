"""Rehearsals: the runbook performed end to end against the simulator, mistakes included.

A rehearsal runs the real runbook (:data:`cutover.runbook.steps.RUNBOOK`) with two
differences, both confined to this module:

- **The operator is the tool.** :class:`RehearsalOperator` attests every manual step as
  "rehearsal", and before that the step is *performed* in the simulator through its admin
  surface (``/_sim/…``): :func:`rehearsal_runbook` attaches a ``rehearse`` action to each
  manual step — stop the milestone map, save the cutover version with the TRANSSTATUS value
  map, stop the three maps, put the original version back, start the maps.
- **Mistakes on purpose.** A fault changes what is performed (a map is left running, the
  cutover version is never saved…) or how the world behaves (throttling, asynchronous invoice
  integration, a bad extract row, a crash). The runbook's own checks must then stop the run at
  the right step — or, with map state withheld (``blind``), let it through so that only the
  validation suite can catch it.

:data:`FAULTS` lists every fault and what it does. The rehearsal's simulator must be the
profile's own (a ``--sim-db`` profile): only then does the run know the admin token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import httpx

from .dualwrite_state import ACTUALS_MAP, INVOICES_MAP, MILESTONE_MAP, THREE_MAPS
from .errors import EnvironmentProblem, UsageError
from .runbook.model import Evidence, Kind, Runbook, Step
from .runbook.operator import Attestation

if TYPE_CHECKING:
    from .engine import RunContext

REHEARSAL_ACTOR = "rehearsal"
CUTOVER_VERSION_DESCRIPTION = "cutover"

#: name -> what the mistake is. Crash faults are carried out by the rehearsal's driver (it kills
#: the run's process and runs it again); the others by this module.
FAULTS: dict[str, str] = {
    "skip-cutover-version": "the TRANSSTATUS mapping is never saved as a cutover version; the map is just started again",
    "milestone-map-left-running": "the milestone map is not stopped before invoicing",
    "invoices-map-left-running": "the invoices map is not stopped before invoicing",
    "actuals-map-left-running": "the actuals map is not stopped before invoicing",
    "map-version-not-reverted": "the milestone map stays on the cutover version afterwards",
    "maps-not-restarted": "the three maps are not started again afterwards",
    "invoice-integration-async": "the invoice and actuals integration runs in asynchronous mode (not covered by the procedure)",
    "uninvoiced-row-in-extract": "a NotInvoiced legacy row is relabelled Invoiced, without a legacy invoice number",
    "throttle-storm": "30 % of the API requests are answered 429 (service protection)",
    "crash-mid-load": "the run is killed in the middle of the milestone load, then resumed",
    "crash-mid-invoicing": "the run is killed in the middle of invoicing, then resumed",
}
CRASH_FAULTS = ("crash-mid-load", "crash-mid-invoicing")


def check_faults(faults: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(faults))
    unknown = [f for f in chosen if f not in FAULTS]
    if unknown:
        raise UsageError(f"unknown fault {', '.join(unknown)}", fix=f"choose from: {', '.join(FAULTS)}")
    return chosen


def transstatus_mapping() -> dict[str, Any]:
    """The mapping step 3 of the procedure adds: TRANSSTATUS ⇐ msdyn_invoicestatus (Dataverse →
    F&O), value map 4 ⇐ 192350001."""
    return {
        "fno_field": "TRANSSTATUS",
        "dataverse_field": "msdyn_invoicestatus",
        "direction": "dataverse_to_fno",
        "transform": {"type": "ValueMap", "values": {"4": "192350001"}},
    }


class SimulatorAdmin:
    """The rehearsal simulator's admin surface, as the run's profile reaches it."""

    def __init__(self, base_url: str, headers: dict[str, str], *, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self._client = client

    @classmethod
    def of(cls, ctx: RunContext) -> SimulatorAdmin:
        if ctx.session is None:
            raise UsageError("a rehearsal needs an open environment")
        base, headers = ctx.session.simulator_admin()
        return cls(base, headers)

    async def call(self, method: str, path: str, body: dict | None = None) -> Any:
        client = self._client or httpx.AsyncClient(timeout=60)
        try:
            r = await client.request(method, f"{self.base_url}/_sim/{path}", headers=self.headers, json=body)
        except httpx.HTTPError as exc:
            raise EnvironmentProblem(
                f"the rehearsal simulator's admin surface did not answer {method} /_sim/{path}: {exc}"
            ) from None
        finally:
            if self._client is None:
                await client.aclose()
        if r.status_code >= 400:
            raise EnvironmentProblem(
                f"the rehearsal simulator refused {method} /_sim/{path}: {r.status_code} {r.text[:300]}"
            )
        return r.json() if r.content else None

    async def map_op(self, name: str, op: str, body: dict | None = None) -> dict:
        return await self.call("POST", f"maps/{name}/{op}", body or {})

    async def get_map(self, name: str) -> dict:
        return await self.call("GET", f"maps/{name}")

    async def settings(self, **values: Any) -> dict:
        return await self.call("PUT", "settings", values)

    async def faults(self, **values: Any) -> dict:
        return await self.call("PUT", "faults", values)


# --- performing the manual steps ----------------------------------------------------------------


def _next_version(versions: list[dict]) -> str:
    """A version number above every saved one (save-as needs a new one)."""

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))

    highest = max((v["version"] for v in versions), key=key, default="1.0.0.0")
    parts = [int(p) if p.isdigit() else 0 for p in highest.split(".")]
    parts[-1] += 1
    return ".".join(str(p) for p in parts)


def _performer(faults: tuple[str, ...]):
    """step id -> async generator performing it in the simulator (honouring the faults)."""

    async def maintenance(ctx: RunContext) -> AsyncIterator[Any]:
        await SimulatorAdmin.of(ctx).call("PUT", "maintenance", {"enabled": True})
        yield "rehearsal: maintenance mode switched on in the simulator"

    async def generate_mapping(ctx: RunContext) -> AsyncIterator[Any]:
        await SimulatorAdmin.of(ctx).call("POST", "fno/generate-mapping", {})
        yield "rehearsal: target mapping generated"

    async def stop_milestones(ctx: RunContext) -> AsyncIterator[Any]:
        admin = SimulatorAdmin.of(ctx)
        await _stop(admin, MILESTONE_MAP)
        await admin.map_op(MILESTONE_MAP, "refresh-tables")
        yield "rehearsal: milestone map stopped, tables refreshed"

    async def add_transstatus(ctx: RunContext) -> AsyncIterator[Any]:
        yield "rehearsal: the TRANSSTATUS mapping is added when the version is saved"

    async def save_cutover_version(ctx: RunContext) -> AsyncIterator[Any]:
        admin = SimulatorAdmin.of(ctx)
        if "skip-cutover-version" in faults:
            await _start(admin, MILESTONE_MAP)
            yield "rehearsal FAULT skip-cutover-version: the map was started again without saving a cutover version"
            return
        current = await admin.get_map(MILESTONE_MAP)
        active = next((v for v in current["versions"] if v["version"] == current["active_version"]), None)
        has_map = any(m.get("fno_field") == "TRANSSTATUS" for m in (active or {}).get("mappings", []))
        if not has_map:
            version = _next_version(current["versions"])
            await admin.map_op(
                MILESTONE_MAP,
                "save-as",
                {
                    "version": version,
                    "description": CUTOVER_VERSION_DESCRIPTION,
                    "publisher": "Default publisher",
                    "add_mappings": [transstatus_mapping()],
                },
            )
            yield f"rehearsal: saved cutover version {version} (TRANSSTATUS value map 4 ⇐ 192350001)"
        await _start(admin, MILESTONE_MAP)
        yield "rehearsal: milestone map running"

    async def stop_three(ctx: RunContext) -> AsyncIterator[Any]:
        admin = SimulatorAdmin.of(ctx)
        left = {
            MILESTONE_MAP: "milestone-map-left-running",
            ACTUALS_MAP: "actuals-map-left-running",
            INVOICES_MAP: "invoices-map-left-running",
        }
        for name in THREE_MAPS:
            if left[name] in faults:
                yield f"rehearsal FAULT {left[name]}: {name} left running"
                continue
            await _stop(admin, name)
            yield f"rehearsal: {name} stopped"

    async def revert_version(ctx: RunContext) -> AsyncIterator[Any]:
        admin = SimulatorAdmin.of(ctx)
        if "map-version-not-reverted" in faults:
            yield "rehearsal FAULT map-version-not-reverted: the cutover version stays"
            return
        current = await admin.get_map(MILESTONE_MAP)
        original = current.get("original_version")
        if original and current["active_version"] != original:
            await _stop(admin, MILESTONE_MAP)
            await admin.map_op(MILESTONE_MAP, "version", {"version": original})
        yield f"rehearsal: milestone map back on version {original}"

    async def restart_three(ctx: RunContext) -> AsyncIterator[Any]:
        admin = SimulatorAdmin.of(ctx)
        if "maps-not-restarted" in faults:
            yield "rehearsal FAULT maps-not-restarted: the three maps stay stopped"
            return
        for name in THREE_MAPS:
            await _start(admin, name)
        yield "rehearsal: the three maps running again"

    return {
        "preflight.maintenance": maintenance,
        "map.generate-mapping": generate_mapping,
        "map.stop-milestones": stop_milestones,
        "map.add-transstatus": add_transstatus,
        "map.save-cutover-version": save_cutover_version,
        "maps.stop-three": stop_three,
        "maps.revert-version": revert_version,
        "maps.restart-three": restart_three,
    }


async def _stop(admin: SimulatorAdmin, name: str) -> None:
    if (await admin.get_map(name))["state"] not in ("stopped", "not_running", "Not running"):
        await admin.map_op(name, "stop")


async def _start(admin: SimulatorAdmin, name: str) -> None:
    if (await admin.get_map(name))["state"] not in ("running", "Running"):
        await admin.map_op(name, "start")


def rehearsal_runbook(runbook: Runbook, faults: Iterable[str] = ()) -> Runbook:
    """``runbook`` with every manual or attested step performed in the simulator first."""
    performers = _performer(check_faults(faults))
    steps: list[Step] = []
    for step in runbook:
        performer = performers.get(step.id)
        if performer is not None and step.kind is not Kind.AUTO:
            step = dataclasses.replace(step, rehearse=performer)
        steps.append(step)
    return Runbook(tuple(steps))


async def prepare_world(
    ctx: RunContext, faults: Iterable[str], *, long_running: float = 0.0, blind: bool = False
) -> list[str]:
    """Set the simulator up for the rehearsal's faults; returns what was done, in words."""
    admin = SimulatorAdmin.of(ctx)
    chosen = check_faults(faults)
    done: list[str] = []
    if "invoice-integration-async" in chosen:
        await admin.settings(dualwrite_async_invoicing=True)
        done.append("invoice and actuals integration set to asynchronous mode")
    if "throttle-storm" in chosen:
        await admin.faults(throttle_rate=0.3, retry_after=1)
        done.append("30 % of API requests throttled (429, Retry-After 1 s)")
    if long_running:
        await admin.settings(background_delay_s=long_running)
        done.append(f"invoice create and confirm run in the background ({long_running:g} s)")
    if blind:
        await admin.settings(map_state_hidden_from=["*"])
        done.append("map state and map versions withheld from every identity")
    return done


class RehearsalOperator:
    """Attests every manual step as "rehearsal" (after the step was performed in the simulator);
    accepts unreadable evidence by the same name. A rehearsal profile is never production."""

    name = REHEARSAL_ACTOR

    async def attest(self, step: Step, evidence: Evidence | None) -> Attestation | None:
        return Attestation(REHEARSAL_ACTOR, f"performed in the rehearsal simulator: {step.title}")

    async def confirm_production(self, step: Step, environment: str) -> bool:
        return False

    async def confirm_point_of_no_return(self, step: Step) -> bool:
        return True

    async def acknowledge_not_verified(self, step: Step, evidence: Evidence) -> str | None:
        return REHEARSAL_ACTOR
