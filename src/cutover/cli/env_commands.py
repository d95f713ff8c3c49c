"""`cutover env add|list|show|test` and `cutover login`: environment profiles and sign-in."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cutover import config as configuration

from . import _load, _profile, _show_code, _with_option_hint, main, run_async, workspace_option


@main.group()
def env() -> None:
    """Environment profiles: where Dataverse and F&O are and how to sign in."""


@env.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(configuration.KINDS), required=True)
@click.option(
    "--sim-db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rehearsal: a simulator database; commands start the simulator themselves.",
)
@click.option("--dataverse-url", default=None)
@click.option("--fno-url", default=None)
@click.option("--tenant", default=None)
@click.option("--client-id", default=None)
@click.option("--auth", type=click.Choice(configuration.AUTH_METHODS), default=None)
@click.option("--secret-env", default=None, help="Name of the environment variable that holds the client secret.")
@click.option(
    "--keyring-service", default=None, help="OS keyring service holding the secret (instead of --secret-env)."
)
@click.option("--keyring-username", default=None)
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Certificate (PEM with private key) for --auth certificate.",
)
@click.option(
    "--identity", "identities", multiple=True, help="Extra application user (client id) for the write pool; repeatable."
)
@click.option("--invoice-create-action", default=None)
@click.option("--invoice-confirm-action", default=None)
@click.option("--replace", is_flag=True, help="Replace an existing profile of the same name.")
@workspace_option
def env_add(name: str, workspace: Path | None, replace: bool, identities: tuple[str, ...], **fields) -> None:
    """Add an environment profile to the workspace's cutover.toml (no secrets are stored)."""
    ws = configuration.resolve_workspace(workspace)
    values = {k: v for k, v in fields.items() if v is not None}
    for key in ("sim_db", "cert_path"):  # typed relative to where the operator stands
        if key in values:
            values[key] = str(Path(values[key]).expanduser().resolve())
    if identities:
        values["identities"] = tuple(identities)
    try:
        profile = configuration.Profile(name=name, **values)
        configuration.update_config(ws, lambda config: config.add(profile, replace=replace))
    except configuration.ConfigError as exc:
        raise _with_option_hint(exc) from None
    click.echo(f"added profile '{name}' ({profile.kind}) to {configuration.config_path(ws)}")
    if profile.embedded_simulator:
        click.echo(f"  simulator database: {profile.sim_db_path(ws)} (started on demand)")
    click.echo(f"next: cutover env test {name}" + (f" --workspace {workspace}" if workspace else ""))


@env.command("list")
@workspace_option
def env_list(workspace: Path | None) -> None:
    """List the workspace's profiles."""
    _ws, config = _load(workspace)
    if not config.profiles:
        click.echo(f"no profiles in {config.path}; add one with: cutover env add NAME --kind rehearsal --sim-db PATH")
        return
    rows = [("NAME", "KIND", "DATAVERSE", "AUTH", "PINNED ORG")]
    for p in config.profiles.values():
        where = f"simulator {p.sim_db}" if p.embedded_simulator else (p.dataverse_url or "")
        rows.append((p.name, p.kind, where, p.auth or "", p.pinned_org_id or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@env.command("show")
@click.argument("name")
@workspace_option
def env_show(name: str, workspace: Path | None) -> None:
    """Show one profile, and where its secret would come from (never the secret)."""
    _ws, p = _profile(workspace, name)
    for key, value in p.to_table().items():
        if isinstance(value, dict):
            for k, v in value.items():
                click.echo(f"{key}.{k} = {v}")
        else:
            click.echo(f"{key} = {value}")
    described = configuration.describe_secret_source(p, p.client_id or "", os.environ)
    state = f" ({'set' if os.environ.get(p.secret_env) else 'NOT set'})" if p.secret_env else ""
    click.echo(f"secret: from {described}{state}")


@env.command("test")
@click.argument("name")
@click.option(
    "--repin", is_flag=True, help="Accept a different organization id and pin it (the environment was really replaced)."
)
@workspace_option
def env_test(name: str, workspace: Path | None, repin: bool) -> None:
    """Sign in, call WhoAmI and one F&O read; pin the organization on first success."""
    from cutover.environment_check import check_environment

    ws, profile = _profile(workspace, name)
    result = run_async(check_environment(profile, ws, repin=repin, on_code=_show_code))
    if result.simulator_url:
        click.echo(f"simulator: {result.simulator_url} (database {result.simulator_db})")
    click.echo(f"Dataverse: {result.dataverse_root} — organization {result.organization_id}, user {result.user_id}")
    click.echo(
        f"Finance and Operations: {result.fno_root} — {result.dual_write_configurations} dual-write project "
        "configuration(s) readable"
    )
    click.echo(f"ok in {result.seconds:.1f} s; profile '{name}' is pinned to organization {result.pinned_org_id}")


@main.command()
@click.argument("name")
@workspace_option
def login(name: str, workspace: Path | None) -> None:
    """Sign in to an environment (device code over SSH) and cache the tokens in the workspace."""
    from cutover.environment_check import sign_in

    ws, profile = _profile(workspace, name)
    described = run_async(sign_in(profile, ws, on_code=_show_code))
    click.echo(f"signed in to '{name}': {described}")
