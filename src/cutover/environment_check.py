"""`cutover env test` and `cutover login` as core operations: sign in, identify, pin.

An environment check signs in, asks Dataverse who we are (WhoAmI, once), refuses an
organization other than the pinned one unless re-pinning was asked for, reads one F&O entity
to prove the second service answers, and pins the organization id on first success. Nothing
here prints: the caller gets a typed result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .auth import OnCode
from .config import Profile, pin_fingerprint
from .session import open_session


@dataclass(frozen=True)
class EnvironmentCheck:
    profile: str
    simulator_url: str | None  # set when the profile's own simulator was started for the check
    simulator_db: Path | None
    dataverse_root: str
    fno_root: str
    organization_id: str
    user_id: str
    dual_write_configurations: int  # rows of DualWriteProjectConfigurations readable
    pinned_org_id: str
    seconds: float


async def check_environment(
    profile: Profile, workspace: Path, *, repin: bool = False, on_code: OnCode | None = None
) -> EnvironmentCheck:
    """Sign in, WhoAmI, one F&O read; pin the organization (re-pin with ``repin``)."""
    started = time.perf_counter()
    async with open_session(profile, workspace, read_only=True, on_code=on_code) as session:
        who = await session.whoami()
        org = str(who["OrganizationId"]).lower()
        if not repin:
            await session.check_fingerprint(org)
        rows = 0
        async for page in session.fno.pages("DualWriteProjectConfigurations", cross_company=True):
            rows += len(page)
        embedded = profile.embedded_simulator
        result = dict(
            profile=profile.name,
            simulator_url=session.sim_url if embedded else None,
            simulator_db=profile.sim_db_path(workspace) if embedded else None,
            dataverse_root=session.dataverse_root,
            fno_root=session.fno_root,
            organization_id=org,
            user_id=str(who["UserId"]),
            dual_write_configurations=rows,
        )
    pinned = pin_fingerprint(workspace, profile.name, org, force=repin)
    return EnvironmentCheck(**result, pinned_org_id=pinned.pinned_org_id, seconds=time.perf_counter() - started)


async def sign_in(profile: Profile, workspace: Path, *, on_code: OnCode | None = None) -> str:
    """Sign in every identity the profile uses and cache the tokens; says how (never a secret)."""
    async with open_session(profile, workspace, read_only=True, on_code=on_code) as session:
        for transport in session.transports:
            await transport.tokens.token()
        return session.transports[0].tokens.describe()
