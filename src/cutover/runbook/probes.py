"""Read-only evidence about dual-write that the runbook's gates and checks need.

Two kinds of things live here:

- **plain readers** taking clients, testable without an engine: :func:`read_configurations`,
  :func:`read_map_states`, :func:`map_state_evidence`, :func:`async_integration_evidence`,
  :func:`read_milestone_map_versions`;
- **probes** (``async def probe(ctx: RunContext) -> Evidence``) built on them:
  :func:`maps_stopped` / :func:`maps_running` (factories over map names),
  :data:`milestone_map_stopped`, :data:`three_maps_stopped`, :data:`three_maps_running`,
  :func:`invoice_integration_async`, :func:`cutover_version_running`,
  :func:`original_version_running` and :func:`record_original_version`.

Rules (docs/architecture.md, "Domain facts", Dual-write):

- **Map state** comes from F&O ``DualWriteProjectConfigurations`` (two rows per map). A map's
  rows are those whose ``ExternalEntityName`` is the map's Dataverse table. A map reads
  *stopped* only when every one of its rows reads ``Disabled``, *running* only when every one
  reads ``Enabled``; anything else (``Queueing`` — a paused map — or a mix) is neither, and
  the evidence names the rows and what each reads. A map with no row at all cannot be judged
  (``not-verified``). A 401, 403 or 404 on the entity means this account cannot read map
  state: ``not-verified`` (the runbook's attestation is then the evidence).
- **Asynchronous invoice integration**: any row of the invoices or actuals map whose
  ``AsyncMode`` is ``RequiredAsync`` fails the probe — the cutover procedure does not cover it.
- **Map versions** come from Dataverse ``msdyn_dualwriteruntimeconfigs`` (the running version,
  ``msdyn_unsecure`` → ``EntityMapVersion``) and ``msdyn_dualwriteentitymaps`` (one row per
  saved version, ``msdyn_mapping`` JSON). Parsing of the mapping is
  :func:`cutover.mapcheck.has_cutover_value_map` (shared with ``cutover migrate``). A 401, 403
  or 404 is ``not-verified`` ("map versions cannot be read here; attest").
- **Cutover version**: the running version of the milestone map has the TRANSSTATUS value map
  4 ⇐ 192350001 (:data:`cutover.domain.CUTOVER_VALUE_MAP`).
- **Original version** (our rule): the version the milestone map ran *before* the cutover
  version. When a probe saw it running — :func:`record_original_version` (run it before the
  map is changed, e.g. as the gate of the map-change step) stores it in
  ``ctx.state["original_map_version"]`` (``{"id", "name", "version"}``) and in its figures —
  the running version must be exactly that one. When nothing was recorded, the original is
  inferred from the version table: the highest version without the TRANSSTATUS value map
  whose version number is below the lowest cutover version's (save-as raises the number, so
  that is the version the cutover version was saved from). A cutover version running, or
  another version than the original, fails; no cutover version in the table and nothing
  recorded is ``not-verified`` (attest).

``ctx.state`` does not survive a resume: what was recorded is also in the probe's figures, in
the journal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dualwrite_state import (
    ACTUALS_MAP,
    CONFIGURATIONS,
    INVOICES_MAP,
    MILESTONE_MAP,
    RUNNING,
    STOPPED,
    THREE_MAPS,
    ConfigurationRow,
    MapState,
    async_integration_evidence,
    cannot_read,
    map_state_evidence,
    read_configurations,
    read_map_states,
    unreadable,
)
from ..mapcheck import CUTOVER, NOT_CUTOVER, RUNTIME_SET, VERSIONS_SET, check_milestone_map, has_cutover_value_map
from ..transport import AuthenticationFailed
from .model import Evidence, Probe

ORIGINAL_KEY = "original_map_version"

if TYPE_CHECKING:
    from ..dataverse import DataverseClient
    from ..engine import RunContext

__all__ = [
    "ACTUALS_MAP",
    "CONFIGURATIONS",
    "INVOICES_MAP",
    "MILESTONE_MAP",
    "ORIGINAL_KEY",
    "THREE_MAPS",
    "ConfigurationRow",
    "MapState",
    "MapVersion",
    "MilestoneMapVersions",
    "async_integration_evidence",
    "cutover_version_running",
    "invoice_integration_async",
    "map_state_evidence",
    "maps_running",
    "maps_stopped",
    "milestone_map_stopped",
    "original_version_running",
    "read_configurations",
    "read_map_states",
    "read_milestone_map_versions",
    "record_original_version",
    "three_maps_running",
    "three_maps_stopped",
    "unreadable",
]

# --- probes over the runbook's context --------------------------------------------------------


def _entity(ctx: RunContext, logical: str, default: str) -> str:
    profile = getattr(ctx, "profile", None)
    names = getattr(profile, "entity_names", None) or {}
    return names.get(logical, default)


def _no_session(ctx: RunContext) -> Evidence | None:
    if getattr(ctx, "session", None) is None:
        return Evidence.not_verified("no environment is open in this run; the state cannot be read")
    return None


def maps_stopped(names: Sequence[str]) -> Probe:
    """A probe: every named map reads stopped (all its configuration rows Disabled)."""
    return _maps_probe(tuple(names), STOPPED)


def maps_running(names: Sequence[str]) -> Probe:
    """A probe: every named map reads running (all its configuration rows Enabled)."""
    return _maps_probe(tuple(names), RUNNING)


def _maps_probe(names: tuple[str, ...], want: str) -> Probe:
    async def probe(ctx: RunContext) -> Evidence:
        if (missing := _no_session(ctx)) is not None:
            return missing
        entity = _entity(ctx, "fno_dualwrite_configurations", CONFIGURATIONS)
        try:
            states = await read_map_states(ctx.session.fno, names, entity)
        except unreadable as exc:
            return cannot_read(f"map state ({entity})", exc, f"attest that {', '.join(names)} are {want}")
        return map_state_evidence(states, want)

    probe.__name__ = f"maps_{want}"
    probe.__qualname__ = f"maps_{want}({', '.join(names)})"
    return probe


milestone_map_stopped: Probe = maps_stopped((MILESTONE_MAP,))
three_maps_stopped: Probe = maps_stopped(THREE_MAPS)
three_maps_running: Probe = maps_running(THREE_MAPS)


async def invoice_integration_async(ctx: RunContext) -> Evidence:
    """``failed`` when the invoices or actuals map runs the asynchronous invoice integration."""
    if (missing := _no_session(ctx)) is not None:
        return missing
    entity = _entity(ctx, "fno_dualwrite_configurations", CONFIGURATIONS)
    try:
        rows = await read_configurations(ctx.session.fno, entity)
    except unreadable as exc:
        return cannot_read(f"map state ({entity})", exc, "attest that the asynchronous invoice integration is off")
    return async_integration_evidence(rows)


# --- map versions ---------------------------------------------------------------------------


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_milestone_map(name: Any) -> bool:
    return isinstance(name, str) and MILESTONE_MAP in name.lower()


def version_key(version: str) -> tuple:
    """Sort key of a version number: dotted integers numerically (1.0.0.10 > 1.0.0.9), others last."""
    parts = str(version).split(".")
    if all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), "")
    return (1, (), str(version))


@dataclass(frozen=True)
class MapVersion:
    """One saved version of the milestone map (a ``msdyn_dualwriteentitymaps`` row)."""

    id: str
    name: str
    version: str
    cutover: bool  # has the TRANSSTATUS value map 4 <= 192350001
    managed: bool | None = None

    def as_figures(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version}


@dataclass(frozen=True)
class MilestoneMapVersions:
    """The milestone map's saved versions and the one it runs on (None: no running configuration)."""

    running: str | None
    versions: tuple[MapVersion, ...] = field(default_factory=tuple)

    def find(self, version: str | None) -> MapVersion | None:
        return next((v for v in self.versions if v.version == version), None) if version else None

    @property
    def running_version(self) -> MapVersion | None:
        return self.find(self.running)

    def inferred_original(self) -> MapVersion | None:
        """The version the first cutover version was saved from: the highest version without the
        TRANSSTATUS value map numbered below the lowest cutover version (None if there is none)."""
        cutover = sorted((v for v in self.versions if v.cutover), key=lambda v: version_key(v.version))
        if not cutover:
            return None
        first = version_key(cutover[0].version)
        before = [v for v in self.versions if not v.cutover and version_key(v.version) < first]
        return max(before, key=lambda v: version_key(v.version)) if before else None


async def read_milestone_map_versions(dataverse: DataverseClient) -> MilestoneMapVersions:
    """The milestone map's versions and running version (raises the transport's errors: 401, 403, 404 …)."""
    configs = await dataverse.query_all(RUNTIME_SET, select=["msdyn_name", "msdyn_unsecure"])
    running = None
    for row in configs:
        unsecure = _loads(row.get("msdyn_unsecure")) or {}
        if not isinstance(unsecure, dict):
            unsecure = {}
        if _is_milestone_map(row.get("msdyn_name")) or _is_milestone_map(unsecure.get("EntityMapName")):
            value = unsecure.get("EntityMapVersion")
            running = str(value) if value else None
            break
    rows = await dataverse.query_all(
        VERSIONS_SET,
        select=["msdyn_dualwriteentitymapid", "msdyn_name", "msdyn_version", "msdyn_mapping", "ismanaged"],
    )
    versions = tuple(
        sorted(
            (
                MapVersion(
                    str(r.get("msdyn_dualwriteentitymapid") or ""),
                    str(r.get("msdyn_name") or ""),
                    str(r.get("msdyn_version") or ""),
                    has_cutover_value_map(r.get("msdyn_mapping")),
                    r.get("ismanaged"),
                )
                for r in rows
                if _is_milestone_map(r.get("msdyn_name"))
            ),
            key=lambda v: version_key(v.version),
        )
    )
    return MilestoneMapVersions(running, versions)


_VERSIONS_UNREADABLE = "map versions cannot be read here"


def _versions_not_verified(exc: Exception, attest: str) -> Evidence:
    status = getattr(exc, "status", None)
    return Evidence.not_verified(
        f"{_VERSIONS_UNREADABLE} ({RUNTIME_SET} / {VERSIONS_SET}: {status or type(exc).__name__}); {attest}",
        status=status,
    )


async def cutover_version_running(ctx: RunContext) -> Evidence:
    """``ok`` when the milestone map runs a version with the TRANSSTATUS value map 4 ⇐ 192350001.
    Also records the inferred original version in ``ctx.state`` when none was recorded."""
    if (missing := _no_session(ctx)) is not None:
        return missing
    try:
        check = await check_milestone_map(ctx.session.dataverse)
    except AuthenticationFailed as exc:
        return _versions_not_verified(exc, "attest that the milestone map runs the cutover version")
    figures: dict[str, Any] = {"running_version": check.version}
    if check.state == CUTOVER:
        try:
            versions = await read_milestone_map_versions(ctx.session.dataverse)
        except unreadable:
            versions = None
        if versions is not None and ORIGINAL_KEY not in ctx.state:
            original = versions.inferred_original()
            if original is not None:
                ctx.state[ORIGINAL_KEY] = original.as_figures()
        if ORIGINAL_KEY in ctx.state:
            figures["original_version"] = dict(ctx.state[ORIGINAL_KEY])
        return Evidence.ok(check.describe(), **figures)
    if check.state == NOT_CUTOVER:
        return Evidence.failed(check.describe(), **figures)
    return Evidence.not_verified(
        f"{_VERSIONS_UNREADABLE}: {check.reason}" if "cannot be read" in check.reason else check.describe(),
        **figures,
    )


async def record_original_version(ctx: RunContext) -> Evidence:
    """Record the version the milestone map runs now as its original version (run it before the
    map is changed). If a cutover version already runs, the inferred original is recorded."""
    if (missing := _no_session(ctx)) is not None:
        return missing
    try:
        versions = await read_milestone_map_versions(ctx.session.dataverse)
    except unreadable as exc:
        return _versions_not_verified(exc, "write down the milestone map's running version by hand")
    running = versions.running_version
    if running is None:
        return Evidence.not_verified(
            f"no running version of the milestone map in {RUNTIME_SET}/{VERSIONS_SET}; write it down by hand",
            running_version=versions.running,
        )
    if running.cutover:
        original = versions.inferred_original()
        if original is None:
            return Evidence.not_verified(
                f"the milestone map already runs cutover version {running.version} and the version it was saved "
                "from cannot be told; write the original version down by hand",
                running_version=running.version,
            )
        ctx.state[ORIGINAL_KEY] = original.as_figures()
        return Evidence.ok(
            f"the milestone map already runs cutover version {running.version}; its original version is "
            f"{original.version} (inferred: the version it was saved from)",
            original_version=original.as_figures(),
            inferred=True,
        )
    ctx.state[ORIGINAL_KEY] = running.as_figures()
    return Evidence.ok(
        f"the milestone map's original version is {running.version} ({running.name}, id {running.id})",
        original_version=running.as_figures(),
        inferred=False,
    )


async def original_version_running(ctx: RunContext) -> Evidence:
    """``ok`` when the milestone map runs its original version again (the rule in the module docstring)."""
    if (missing := _no_session(ctx)) is not None:
        return missing
    try:
        versions = await read_milestone_map_versions(ctx.session.dataverse)
    except unreadable as exc:
        return _versions_not_verified(exc, "attest that the milestone map runs its original version")
    running = versions.running_version
    figures: dict[str, Any] = {"running_version": versions.running}
    if running is None:
        return Evidence.not_verified(
            f"no running version of the milestone map can be read in {RUNTIME_SET}/{VERSIONS_SET} "
            f"(running: {versions.running or 'none'}); attest that it runs its original version",
            **figures,
        )
    recorded = ctx.state.get(ORIGINAL_KEY)
    if isinstance(recorded, str):
        recorded = {"version": recorded}
    if recorded:
        figures["original_version"] = dict(recorded)
        if running.version == str(recorded.get("version")):
            return Evidence.ok(f"the milestone map runs its original version {running.version} again", **figures)
        return Evidence.failed(
            f"the milestone map runs version {running.version}"
            + (" (a cutover version, with the TRANSSTATUS value map)" if running.cutover else "")
            + f", not its original version {recorded.get('version')}",
            **figures,
        )
    if running.cutover:
        return Evidence.failed(
            f"the milestone map still runs cutover version {running.version} (with the TRANSSTATUS value map "
            "4 ⇐ 192350001): milestones would keep landing in F&O as Invoiced",
            **figures,
        )
    original = versions.inferred_original()
    if original is None:
        return Evidence.not_verified(
            f"the milestone map runs version {running.version}, without the TRANSSTATUS value map; which version "
            "ran before the cutover was not recorded and cannot be told from the version table; attest it",
            **figures,
        )
    figures["original_version"] = original.as_figures()
    if running.version == original.version:
        return Evidence.ok(
            f"the milestone map runs its original version {running.version} again (the version the cutover "
            "version was saved from)",
            **figures,
        )
    return Evidence.failed(
        f"the milestone map runs version {running.version}, not its original version {original.version} "
        "(the version the cutover version was saved from)",
        **figures,
    )
