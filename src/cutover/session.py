"""Opening an environment: profile -> (embedded simulator) -> sign-in -> transports -> clients.

Every command that talks to Dataverse or F&O goes through `open_session`, so the wrong-
environment guard, the embedded simulator, sign-in and read-only mode work the same way
everywhere. Opening never blocks the event loop: the embedded simulator starts in a worker
thread (:mod:`cutover.simprocess`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import OnCode, pool_sources_for, token_sources_for
from .config import Profile, check_fingerprint
from .dataverse import DataverseClient
from .errors import UsageError
from .fno import FnoClient
from .simprocess import SimulatorProcess
from .transport import Transport


@dataclass
class Session:
    profile: Profile
    workspace: Path
    dataverse: DataverseClient
    fno: FnoClient
    sim_url: str | None
    dataverse_root: str
    fno_root: str
    transports: list[Transport] = field(default_factory=list)
    simulator: SimulatorProcess | None = None  # the profile's own simulator, when it has one

    def simulator_admin(self) -> tuple[str, dict[str, str]]:
        """(base URL, headers) of the rehearsal simulator's admin surface (``/_sim/…``).

        Only a rehearsal profile with its own simulator database knows the admin token."""
        if self.simulator is None or not self.simulator.admin_token:
            raise UsageError(
                f"profile '{self.profile.name}' has no simulator of its own whose admin surface this run can use",
                fix="rehearse with a profile made by `cutover env add NAME --kind rehearsal --sim-db PATH`",
            )
        return self.simulator.url or "", self.simulator.admin_headers()

    async def whoami(self) -> dict[str, Any]:
        """Dataverse's WhoAmI answer (OrganizationId, UserId, BusinessUnitId)."""
        return await self.dataverse.whoami()

    async def organization_id(self) -> str:
        return str((await self.whoami())["OrganizationId"]).lower()

    async def check_fingerprint(self, organization_id: str | None = None) -> str:
        """The org id (asked with WhoAmI unless given), after refusing to go on if it is not the
        profile's pinned one (:func:`cutover.config.check_fingerprint`)."""
        return check_fingerprint(self.profile, organization_id or await self.organization_id())


def _roots(profile: Profile, sim_url: str | None) -> tuple[str, str]:
    dv = sim_url or profile.dataverse_url
    fno = sim_url or profile.fno_url
    return f"{dv.rstrip('/')}/api/data/v9.2/", f"{fno.rstrip('/')}/data/"


@contextlib.asynccontextmanager
async def open_session(
    profile: Profile,
    workspace: Path,
    *,
    read_only: bool = False,
    write_pool: bool = False,
    on_code: OnCode | None = None,
    cancel: Any = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[Session]:
    """Sign in to the profile's environment and yield its clients; everything is closed after."""
    environ = os.environ if environ is None else environ
    async with contextlib.AsyncExitStack() as stack:
        sim_url = None
        simulator = None
        if profile.embedded_simulator:
            simulator = SimulatorProcess(profile.sim_db_path(workspace))
            sim_url = await stack.enter_async_context(simulator)
        elif profile.is_rehearsal:
            sim_url = profile.dataverse_url
        dv_root, fno_root = _roots(profile, sim_url if profile.embedded_simulator else None)
        sources = token_sources_for(
            profile, workspace, environ=environ, on_code=on_code, sim_url=sim_url, cancel=cancel
        )
        name = profile.name
        transports: list[Transport] = []
        pool_sources: list = []
        if write_pool and not read_only and len(profile.all_client_ids()) > 1:
            pool_sources = list(pool_sources_for(profile, workspace, environ=environ, sim_url=sim_url).values())
            for source in pool_sources:
                transports.append(Transport(dv_root, source, environment=name))
        else:
            transports.append(Transport(dv_root, sources["dataverse"], environment=name, read_only=read_only))
        fno_transport = Transport(fno_root, sources["fno"], environment=name, read_only=read_only)
        try:
            yield Session(
                profile,
                workspace,
                DataverseClient(transports),
                FnoClient(fno_transport),
                sim_url,
                dv_root,
                fno_root,
                transports + [fno_transport],
                simulator,
            )
        finally:
            for t in transports + [fno_transport]:
                await t.aclose()
            for source in [*sources.values(), *pool_sources]:
                close = getattr(source, "close", None)
                if close:
                    close()
