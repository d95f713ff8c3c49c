"""`cutover env` and `cutover login` as an operator meets them: messages and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cutover.cli import main
from cutover.sim.seed import organization_id


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def seed(db: Path, n: int) -> None:
    result = cli(
        "sim",
        "seed",
        "--db",
        str(db),
        "--seed",
        str(n),
        "--force",
        "--invoiced",
        "5",
        "--uninvoiced",
        "1",
        "--gl-lines",
        "200",
        "--ar-transactions",
        "20",
    )
    assert result.exit_code == 0, result.output


def test_env_test_pins_the_organization_then_refuses_a_different_environment(tmp_path: Path, workspace: Path):
    """`env test` pins the org id on first success; when the database behind the profile is
    replaced by a differently seeded world, it refuses with exit 3 — the wrong-environment guard."""
    db = tmp_path / "night.sqlite"
    seed(db, 1)
    assert (
        cli("env", "add", "night", "--kind", "rehearsal", "--sim-db", str(db), "--workspace", str(workspace)).exit_code
        == 0
    )
    first = cli("env", "test", "night", "--workspace", str(workspace))
    assert first.exit_code == 0, first.output
    assert f"pinned to organization {organization_id(1)}" in first.output
    assert f'pinned_org_id = "{organization_id(1)}"' in (workspace / "cutover.toml").read_text()

    seed(db, 2)
    second = cli("env", "test", "night", "--workspace", str(workspace))
    assert second.exit_code == 3
    assert organization_id(2) in second.output and organization_id(1) in second.output
    assert "not the environment" in second.output

    repinned = cli("env", "test", "night", "--repin", "--workspace", str(workspace))
    assert repinned.exit_code == 0 and f"pinned to organization {organization_id(2)}" in repinned.output


def test_login_caches_tokens_with_owner_only_permissions(tmp_path: Path, workspace: Path):
    """`cutover login` signs in through msal and leaves a 0600 token cache in the workspace."""
    db = tmp_path / "w.sqlite"
    seed(db, 3)
    cli("env", "add", "night", "--kind", "rehearsal", "--sim-db", str(db), "--workspace", str(workspace))
    result = cli("login", "night", "--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    cache = workspace / ".tokens" / "night.json"
    assert cache.exists() and (cache.stat().st_mode & 0o777) == 0o600
    assert "rehearsal-secret" not in result.output


def test_unreachable_environment_is_exit_3_with_the_url(workspace: Path, unused_tcp_port: int):
    """Nothing answering at the profile's URL: one line naming it, exit code 3, no traceback."""
    url = f"http://127.0.0.1:{unused_tcp_port}"
    cli(
        "env",
        "add",
        "gone",
        "--kind",
        "rehearsal",
        "--dataverse-url",
        url,
        "--fno-url",
        url,
        "--workspace",
        str(workspace),
    )
    result = cli("env", "test", "gone", "--workspace", str(workspace))
    assert result.exit_code == 3
    assert "Traceback" not in result.output and f"127.0.0.1:{unused_tcp_port}" in result.output


def test_missing_simulator_database_is_reported(tmp_path: Path, workspace: Path):
    """A rehearsal profile whose database is gone says how to create it (exit 3)."""
    cli(
        "env",
        "add",
        "night",
        "--kind",
        "rehearsal",
        "--sim-db",
        str(tmp_path / "gone.sqlite"),
        "--workspace",
        str(workspace),
    )
    result = cli("env", "test", "night", "--workspace", str(workspace))
    assert result.exit_code == 3 and "cutover sim seed --db" in result.output


def test_missing_secret_variable_is_a_usage_error_naming_it(workspace: Path):
    """A client-secret profile whose variable is not set: exit 2, names the variable and the fix."""
    cli(
        "env",
        "add",
        "sbx",
        "--kind",
        "sandbox",
        "--dataverse-url",
        "https://contoso-sbx.crm.dynamics.com",
        "--fno-url",
        "https://contoso-sbx.sandbox.operations.dynamics.com",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--client-id",
        "11111111-2222-3333-4444-555555555555",
        "--auth",
        "client-secret",
        "--secret-env",
        "CUTOVER_SBX_SECRET",
        "--workspace",
        str(workspace),
    )
    result = cli("env", "test", "sbx", "--workspace", str(workspace), env={"CUTOVER_SBX_SECRET": ""})
    assert result.exit_code == 2
    assert "CUTOVER_SBX_SECRET" in result.output and "export" in result.output


def test_bad_profile_toml_names_line_and_key(workspace: Path):
    """A hand-edited cutover.toml with a bad value: exit 2 with the file, line and key."""
    workspace.mkdir()
    (workspace / "cutover.toml").write_text('[profiles.night]\nkind = "prod"\nsim_db = "x.sqlite"\n')
    result = cli("env", "list", "--workspace", str(workspace))
    assert result.exit_code == 2
    assert "line 2" in result.output and "'kind'" in result.output


def test_production_profile_refuses_plain_http(workspace: Path):
    """Production tokens never travel over http: the option is named in the refusal (exit 2)."""
    result = cli(
        "env",
        "add",
        "prod",
        "--kind",
        "production",
        "--dataverse-url",
        "http://contoso.crm.dynamics.com",
        "--fno-url",
        "https://contoso.operations.dynamics.com",
        "--tenant",
        "t",
        "--client-id",
        "c",
        "--auth",
        "client-secret",
        "--secret-env",
        "S",
        "--workspace",
        str(workspace),
    )
    assert result.exit_code == 2 and "--dataverse-url" in result.output and "https" in result.output


def test_env_list_and_show_never_print_a_secret(workspace: Path):
    """`env show` says where the secret comes from and whether it is set, never its value."""
    cli(
        "env",
        "add",
        "sbx",
        "--kind",
        "sandbox",
        "--dataverse-url",
        "https://a.crm.dynamics.com",
        "--fno-url",
        "https://a.sandbox.operations.dynamics.com",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--client-id",
        "c1",
        "--auth",
        "client-secret",
        "--secret-env",
        "SBX_SECRET",
        "--workspace",
        str(workspace),
    )
    shown = cli("env", "show", "sbx", "--workspace", str(workspace), env={"SBX_SECRET": "s3cr3t-value"})
    assert shown.exit_code == 0
    assert "SBX_SECRET (set)" in shown.output and "s3cr3t-value" not in shown.output
    listed = cli("env", "list", "--workspace", str(workspace))
    assert "sbx" in listed.output and "sandbox" in listed.output


def test_rehearsal_profile_can_point_at_a_running_simulator(world_db: Path, workspace: Path):
    """`env add NAME --kind rehearsal --dataverse-url URL --fno-url URL` reaches a simulator
    that is already running; tokens come from its stand-in identity platform."""
    from cutover.sim.server import running

    with running(world_db) as url:
        assert (
            cli(
                "env",
                "add",
                "live",
                "--kind",
                "rehearsal",
                "--dataverse-url",
                url,
                "--fno-url",
                url,
                "--workspace",
                str(workspace),
            ).exit_code
            == 0
        )
        result = cli("env", "test", "live", "--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    assert f"organization {organization_id(1)}" in result.output
    assert "6 dual-write project configuration(s) readable" in result.output  # two rows per map


def test_a_broken_token_cache_folder_is_a_clear_environment_error(tmp_path: Path, workspace: Path):
    """The workspace's .tokens is not a folder: one line naming it, exit 3, no traceback."""
    db = tmp_path / "w.sqlite"
    seed(db, 4)
    cli("env", "add", "night", "--kind", "rehearsal", "--sim-db", str(db), "--workspace", str(workspace))
    (workspace / ".tokens").write_text("not a folder")
    result = cli("login", "night", "--workspace", str(workspace))
    assert result.exit_code == 3
    assert ".tokens" in result.output and "Traceback" not in result.output


def test_the_module_entry_point_knows_every_command(workspace: Path):
    """`python -m cutover.cli` (how the embedded simulator is started) has the env commands too."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "cutover.cli", "env", "list", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "no profiles" in out.stdout


def test_twelve_concurrent_env_adds_keep_twelve_profiles(workspace: Path):
    """cutover.toml's read-modify-write is locked across processes: nothing is lost."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cutover.cli",
                "env",
                "add",
                f"p{i:02d}",
                "--kind",
                "rehearsal",
                "--dataverse-url",
                "http://127.0.0.1:9",
                "--fno-url",
                "http://127.0.0.1:9",
                "--workspace",
                str(workspace),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(12)
    ]
    outcomes = [(p.wait(60), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    from cutover.config import load_config

    assert sorted(load_config(workspace).profiles) == [f"p{i:02d}" for i in range(12)]


def test_concurrent_token_cache_saves_keep_every_token(tmp_path: Path):
    """Two processes that signed in at once both keep their tokens in the shared cache file."""
    import subprocess
    import sys

    path = tmp_path / ".tokens" / "night.json"
    script = (
        "import json, sys\n"
        "from cutover.token_cache import TokenCacheFile\n"
        "i = int(sys.argv[1]); path = sys.argv[2]\n"
        "for n in range(20):\n"
        "    c = TokenCacheFile(path)\n"
        "    c.cache.deserialize(json.dumps({'AccessToken': {f'k{i}-{n}': {'secret': 'x', 'credential_type': 'AccessToken'}}}))\n"
        "    c.cache.has_state_changed = True\n"
        "    c.save()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i), str(path)]) for i in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    import json

    keys = set(json.loads(path.read_text())["AccessToken"])
    assert keys == {f"k{i}-{n}" for i in range(4) for n in range(20)}
