"""The wrong-environment guard: a profile is pinned to the organization WhoAmI answered on its
first successful `env test`, accepts that organization again however its id is spelled (letter
case above all), and refuses any other one with a WrongEnvironment error (exit 3) that leaves
the pin alone.

The last tests run the whole chain against the simulator over a real socket: WhoAmI through
the session's clients, pinning, and re-checking after the workspace was read again."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.config import (
    Config,
    ConfigError,
    FingerprintMismatch,
    Profile,
    check_fingerprint,
    config_path,
    load_config,
    pin_fingerprint,
    save_config,
)
from cutover.errors import EXIT_ENVIRONMENT, EnvironmentProblem, WrongEnvironment, exit_code_of

ORG = "7d3a1c52-1b8e-4f4e-9a51-0c1d2e3f4a5b"
OTHER = "00000000-0000-0000-0000-000000000001"


def workspace_with(tmp_path: Path, profile: Profile) -> Path:
    ws = tmp_path / "ws"
    config = Config(path=config_path(ws))
    config.add(profile)
    save_config(config)
    return ws


def rehearsal(name: str = "reh", **kw) -> Profile:
    return Profile(name=name, kind="rehearsal", sim_db="world.sqlite", **kw)


# --- accepting the pinned organization ----------------------------------------------------------


@pytest.mark.parametrize(
    "spelled", [ORG, ORG.upper(), "{" + ORG.upper() + "}", f"urn:uuid:{ORG}", ORG.replace("-", "")]
)
def test_pinning_the_pinned_organization_again_is_accepted_and_changes_nothing(tmp_path, spelled):
    """`env test` of a pinned profile pins what WhoAmI answered again: the same organization,
    in whatever case or GUID spelling, is accepted and the file is not rewritten."""
    ws = workspace_with(tmp_path, rehearsal())
    assert pin_fingerprint(ws, "reh", ORG).pinned_org_id == ORG
    before = config_path(ws).read_bytes()
    assert pin_fingerprint(ws, "reh", spelled).pinned_org_id == ORG
    assert config_path(ws).read_bytes() == before
    assert load_config(ws).get("reh").pinned_org_id == ORG


def test_an_upper_case_id_is_pinned_in_lower_case_and_accepted_in_upper_case_again(tmp_path):
    """The first pin may arrive in upper case; it is stored lower-case, and the same upper-case
    id later is accepted — by pinning and by the check a command makes before it works."""
    ws = workspace_with(tmp_path, rehearsal())
    assert pin_fingerprint(ws, "reh", ORG.upper()).pinned_org_id == ORG
    assert f'pinned_org_id = "{ORG}"' in config_path(ws).read_text("utf-8")
    assert pin_fingerprint(ws, "reh", ORG.upper()).pinned_org_id == ORG
    profile = load_config(ws).get("reh")
    assert check_fingerprint(profile, ORG.upper()) == ORG
    assert check_fingerprint(profile, ORG) == ORG


def test_a_hand_written_upper_case_pin_accepts_the_organization(tmp_path):
    """An operator who typed the pin in upper case gets it normalised on load and accepted."""
    ws = tmp_path / "ws"
    ws.mkdir()
    config_path(ws).write_text(
        f'[profiles.reh]\nkind = "rehearsal"\nsim_db = "w"\npinned_org_id = "{ORG.upper()}"\n', encoding="utf-8"
    )
    profile = load_config(ws).get("reh")
    assert profile.pinned_org_id == ORG
    assert check_fingerprint(profile, ORG) == ORG
    assert pin_fingerprint(ws, "reh", ORG).pinned_org_id == ORG
    assert pin_fingerprint(ws, "reh", ORG.upper()).pinned_org_id == ORG


def test_an_unpinned_profile_accepts_any_organization():
    """Nothing is pinned before the first success: the check answers the id, lower-case."""
    assert check_fingerprint(rehearsal(), ORG.upper()) == ORG


# --- refusing another organization --------------------------------------------------------------


def test_another_organization_is_a_wrong_environment_that_exits_3_and_keeps_the_pin(tmp_path):
    """A pinned profile meeting another organization is refused with what to do; the error is
    a WrongEnvironment (exit 3 because of what it is), not a ConfigError, and the pin stays."""
    ws = workspace_with(tmp_path, rehearsal())
    pin_fingerprint(ws, "reh", ORG)
    before = config_path(ws).read_bytes()
    with pytest.raises(
        FingerprintMismatch, match=f"pinned to organization {ORG}, but the environment answered {OTHER}"
    ) as info:
        pin_fingerprint(ws, "reh", OTHER.upper())
    err = info.value
    assert isinstance(err, WrongEnvironment) and not isinstance(err, ConfigError)
    assert err.exit_code == EXIT_ENVIRONMENT and exit_code_of(err) == EXIT_ENVIRONMENT
    line = before.decode().splitlines().index(f'pinned_org_id = "{ORG}"') + 1
    assert (err.profile, err.key, err.path, err.line) == ("reh", "pinned_org_id", config_path(ws), line)
    assert str(err).startswith(f"{config_path(ws)} line {line}, key 'pinned_org_id': profile 'reh' is pinned")
    assert config_path(ws).read_bytes() == before
    assert load_config(ws).get("reh").pinned_org_id == ORG


def test_the_check_refuses_another_organization_naming_both():
    profile = rehearsal(pinned_org_id=ORG)
    with pytest.raises(
        FingerprintMismatch, match=f"WhoAmI answered organization {OTHER}, the profile expects {ORG}"
    ) as info:
        check_fingerprint(profile, OTHER.upper())
    assert "cutover env test reh --repin" in str(info.value)
    assert (info.value.profile, info.value.key, info.value.exit_code) == ("reh", "pinned_org_id", EXIT_ENVIRONMENT)
    assert profile.pinned_org_id == ORG


def test_the_mismatch_keeps_the_constructor_the_session_uses():
    """session.py raises FingerprintMismatch(message, profile=..., key=...)."""
    err = FingerprintMismatch("this is not the environment", profile="prod", key="pinned_org_id")
    assert str(err) == "key 'pinned_org_id': this is not the environment"
    assert (err.message, err.profile, err.key, err.path, err.line) == (
        "this is not the environment",
        "prod",
        "pinned_org_id",
        None,
        None,
    )
    assert err.exit_code == EXIT_ENVIRONMENT


@pytest.mark.parametrize(
    "answered",
    ["not-an-org", "", None, "00000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}"],
)
def test_a_missing_nil_or_malformed_organization_is_never_pinned(tmp_path, answered):
    """Pinning nothing (or the nil GUID) would make the guard accept any environment later."""
    ws = workspace_with(tmp_path, rehearsal())
    before = (ws / "cutover.toml").read_bytes()
    with pytest.raises(
        EnvironmentProblem, match="is not a usable organization id; profile 'reh' was not pinned"
    ) as info:
        pin_fingerprint(ws, "reh", answered)
    assert info.value.exit_code == 3
    assert load_config(ws).get("reh").pinned_org_id is None
    assert (ws / "cutover.toml").read_bytes() == before


# --- the whole chain against the simulator --------------------------------------------------------


def _set_organization(db: Path, org: str) -> None:
    """Give the simulated environment another organization id (what replacing it would do)."""
    from cutover.sim.store import connect, set_setting

    conn = connect(db)
    try:
        set_setting(conn, "organization_id", org)
    finally:
        conn.close()


@pytest.mark.socket
async def test_pin_then_recheck_against_the_simulator_also_when_whoami_answers_upper_case(socket_sim, tmp_path):
    from cutover.session import open_session

    _set_organization(socket_sim.db, ORG.upper())
    url = str(socket_sim.client.base_url).rstrip("/")
    ws = workspace_with(tmp_path, Profile(name="reh", kind="rehearsal", dataverse_url=url, fno_url=url))

    profile = load_config(ws).get("reh")
    async with open_session(profile, ws, read_only=True, environ={}) as session:
        answered = (await session.dataverse.whoami())["OrganizationId"]
    assert answered == ORG.upper()
    assert pin_fingerprint(ws, "reh", answered).pinned_org_id == ORG

    # a later command reads the workspace again and checks before it works
    pinned = load_config(ws).get("reh")
    assert pinned.pinned_org_id == ORG
    async with open_session(pinned, ws, read_only=True, environ={}) as session:
        assert await session.check_fingerprint() == ORG
        assert check_fingerprint(pinned, (await session.dataverse.whoami())["OrganizationId"]) == ORG
    before = config_path(ws).read_bytes()
    assert pin_fingerprint(ws, "reh", answered).pinned_org_id == ORG  # `env test` pins again after success
    assert config_path(ws).read_bytes() == before

    # the environment behind the URL was replaced: refused, exit 3, pin kept
    _set_organization(socket_sim.db, OTHER)
    async with open_session(pinned, ws, read_only=True, environ={}) as session:
        with pytest.raises(FingerprintMismatch, match=f"organization {OTHER}") as info:
            await session.check_fingerprint()
        answered = (await session.dataverse.whoami())["OrganizationId"]
    assert exit_code_of(info.value) == EXIT_ENVIRONMENT and info.value.profile == "reh"
    with pytest.raises(
        FingerprintMismatch, match=f"pinned to organization {ORG}, but the environment answered {OTHER}"
    ):
        pin_fingerprint(ws, "reh", answered)
    assert load_config(ws).get("reh").pinned_org_id == ORG
