"""Which version of the dual-write milestone map is running, and is it a cutover version?

The cutover procedure adds ``TRANSSTATUS ⇐ msdyn_invoicestatus`` (Dataverse → F&O) with the
value map ``4 ⇐ 192350001`` to the milestone map and saves it as a new version, so that
milestones created as Ready for invoicing arrive in F&O as Invoiced. Loaded on any other
version they arrive as Registered, and the night goes wrong quietly.

There is no supported API for dual-write maps. Public code (Microsoft's unsupported
Dual-write-automations and third-party tools) reads two Dataverse tables, and so does this
module (an assumption, docs/architecture.md "Domain facts"):

- ``msdyn_dualwriteruntimeconfigs``: one row per running map; ``msdyn_unsecure`` is JSON with
  ``EntityMapName`` and ``EntityMapVersion`` (the version the map runs on);
- ``msdyn_dualwriteentitymaps``: one row per saved version (``msdyn_name``, ``msdyn_version``),
  ``msdyn_mapping`` JSON: a list of field mappings ``{"sourceField", "destinationField",
  "syncDirection", "valueTransforms": [{"transformType": "ValueMap", "valueMap": {fno: dv}}]}``.

The milestone map is the row whose name (or ``EntityMapName``) is, or contains, the milestone
table's set name ``msdyn_contractlinescheduleofvalues``. Where the tables cannot be read (403:
no privilege; 404: not in this environment) the answer is "not verified" — the runbook's
attestation is then the only evidence, and the caller decides (a load goes on and says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import odata
from .dataverse import DataverseClient
from .domain import CUTOVER_VALUE_MAP, InvoiceStatus, ProjTransStatus
from .transport import NotFound, PermissionDenied

__all__ = [
    "CUTOVER",
    "MILESTONE_MAP",
    "NOT_CUTOVER",
    "NOT_VERIFIED",
    "MapCheck",
    "check_milestone_map",
    "has_cutover_value_map",
]

MILESTONE_MAP = "msdyn_contractlinescheduleofvalues"
RUNTIME_SET = "msdyn_dualwriteruntimeconfigs"
VERSIONS_SET = "msdyn_dualwriteentitymaps"

CUTOVER, NOT_CUTOVER, NOT_VERIFIED = "cutover", "not-cutover", "not-verified"


@dataclass(frozen=True)
class MapCheck:
    """The answer: ``state`` is ``"cutover"``, ``"not-cutover"`` or ``"not-verified"``."""

    state: str
    version: str | None
    reason: str

    @property
    def is_cutover(self) -> bool:
        return self.state == CUTOVER

    @property
    def verified(self) -> bool:
        return self.state != NOT_VERIFIED

    def describe(self) -> str:
        head = {
            CUTOVER: "milestone map runs a cutover version",
            NOT_CUTOVER: "milestone map does NOT run a cutover version",
            NOT_VERIFIED: "milestone map version not verified",
        }[self.state]
        version = f" ({self.version})" if self.version else ""
        return f"{head}{version}: {self.reason}"


def _is_milestone_map(name: Any) -> bool:
    return isinstance(name, str) and MILESTONE_MAP in name.lower()


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def has_cutover_value_map(mapping: Any) -> bool:
    """Whether a version's ``msdyn_mapping`` (text or parsed) maps TRANSSTATUS ⇐ msdyn_invoicestatus,
    Dataverse → F&O, with the value map 4 (Invoiced) ⇐ 192350001 (Ready for invoicing)."""
    items = _loads(mapping) if isinstance(mapping, str) else mapping
    if isinstance(items, dict):
        items = items.get("mappings") or items.get("fieldMappings") or []
    if not isinstance(items, list):
        return False
    want = {str(k): str(v) for k, v in CUTOVER_VALUE_MAP.items()}
    invoiced_names = {str(int(ProjTransStatus.INVOICED)), ProjTransStatus.INVOICED.member.lower()}
    ready = str(int(InvoiceStatus.READY))
    for m in items:
        if not isinstance(m, dict):
            continue
        source = str(m.get("sourceField") or m.get("fno_field") or "").upper()
        target = str(m.get("destinationField") or m.get("dataverse_field") or "").lower()
        direction = str(m.get("syncDirection") or m.get("direction") or "").lower()
        if source != "TRANSSTATUS" or target != "msdyn_invoicestatus":
            continue
        if direction not in ("dataverse_to_fno", "bidirectional", "toerp", "twoway"):
            continue
        transforms = m.get("valueTransforms")
        if transforms is None and isinstance(m.get("transform"), dict):
            transforms = [{"transformType": m["transform"].get("type"), "valueMap": m["transform"].get("values")}]
        for t in transforms or []:
            if not isinstance(t, dict) or str(t.get("transformType", "")).lower() != "valuemap":
                continue
            values = t.get("valueMap") or {}
            if not isinstance(values, dict):
                continue
            pairs = {str(k).lower(): str(v) for k, v in values.items()}
            if any(pairs.get(k) == ready for k in invoiced_names) or all(pairs.get(k) == v for k, v in want.items()):
                return True
    return False


async def check_milestone_map(dataverse: DataverseClient) -> MapCheck:
    """Read the running version of the milestone map and whether it is a cutover version.
    Never raises for a table that cannot be read (403, 404): that is "not verified"."""
    try:
        configs = await dataverse.query_all(RUNTIME_SET, select=["msdyn_name", "msdyn_unsecure"])
    except (PermissionDenied, NotFound) as exc:
        return MapCheck(NOT_VERIFIED, None, f"{RUNTIME_SET} cannot be read ({exc.status}); attest the map version")
    version = None
    for row in configs:
        unsecure = _loads(row.get("msdyn_unsecure")) or {}
        if _is_milestone_map(row.get("msdyn_name")) or _is_milestone_map(unsecure.get("EntityMapName")):
            version = unsecure.get("EntityMapVersion")
            break
    if not version:
        return MapCheck(
            NOT_VERIFIED,
            None,
            f"no running configuration of the milestone map in {RUNTIME_SET}; attest the map version",
        )
    version = str(version)
    try:
        rows = await dataverse.query_all(
            VERSIONS_SET,
            select=["msdyn_name", "msdyn_version", "msdyn_mapping"],
            filter=odata.filter_eq("msdyn_version", version),
        )
    except (PermissionDenied, NotFound) as exc:
        return MapCheck(NOT_VERIFIED, version, f"{VERSIONS_SET} cannot be read ({exc.status}); attest the map version")
    rows = [r for r in rows if _is_milestone_map(r.get("msdyn_name"))]
    if not rows:
        return MapCheck(NOT_VERIFIED, version, f"version {version} of the milestone map is not in {VERSIONS_SET}")
    if has_cutover_value_map(rows[0].get("msdyn_mapping")):
        return MapCheck(CUTOVER, version, "TRANSSTATUS ⇐ msdyn_invoicestatus maps 192350001 to 4 (Invoiced)")
    return MapCheck(
        NOT_CUTOVER,
        version,
        "it has no TRANSSTATUS ⇐ msdyn_invoicestatus value map 4 ⇐ 192350001, so milestones would arrive in F&O as "
        "Registered, not Invoiced. Stop the map, add the mapping, save it as the cutover version and start it "
        "(runbook steps map.*), or pass --skip-map-check for a rehearsal",
    )
