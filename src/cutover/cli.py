"""The `cutover` command. Thin: parse arguments, call the core, set the exit code.

Exit codes: 0 ok, 1 checks failed, 2 bad input or usage, 3 environment / connection error.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import click

EXIT_OK, EXIT_CHECKS_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3
DEFAULT_WORKSPACE = "cutover-workspace"
DEMO_DB = "rehearsal.sqlite"


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cutover")
def main() -> None:
    """Migrate invoiced fixed-price billing milestones into Project Operations without touching AR or GL, and prove it."""


# --- simulator ----------------------------------------------------------------------------------


@main.group()
def sim() -> None:
    """The rehearsal simulator of Dataverse, Finance and Operations and dual-write."""


def _progress(stage: str, done: int, total: int) -> None:
    if total:
        click.echo(f"\r  {stage}: {done:,}/{total:,}".ljust(60), err=True, nl=done >= total)


def default_extract_path(db: Path) -> Path:
    return db.with_name(f"{db.stem}-legacy-extract.csv")


def seed_database(db: Path, scale_name: str, seed: int, extract: Path | None, overrides: dict, force: bool, quiet: bool = False):
    """Create a seeded simulator database; returns the seed summary."""
    from cutover.sim import seed as seeding
    from cutover.sim.store import connect

    if db.exists():
        if not force:
            fail(f"{db} already exists. Use --force to replace it, or choose another --db.", EXIT_USAGE)
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    scale = seeding.SCALES[scale_name]
    chosen = {k: v for k, v in overrides.items() if v is not None}
    if chosen:
        scale = dataclasses.replace(scale, **chosen)
        scale_name = f"{scale_name}+custom"
    extract = extract or default_extract_path(db)
    conn = connect(db)
    try:
        started = time.perf_counter()
        summary = seeding.seed_world(conn, scale, seed=seed, scale_name=scale_name, extract_path=extract, progress=None if quiet else _progress)
        elapsed = time.perf_counter() - started
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        conn.close()
    if not quiet:
        click.echo(
            f"seeded {db} in {elapsed:.1f} s: organization {summary.organization_id}, "
            f"{summary.contracts:,} contracts, {summary.invoiced_milestones:,} invoiced + {summary.uninvoiced_milestones:,} "
            f"un-invoiced legacy milestones, {summary.ar_transactions:,} AR transactions, {summary.gl_lines:,} GL lines"
        )
        click.echo(f"legacy extract: {extract}")
    return summary


SCALE_OVERRIDES = (
    ("legal_entities", "--legal-entities"),
    ("customers", "--customers"),
    ("contracts", "--contracts"),
    ("invoiced_milestones", "--invoiced"),
    ("uninvoiced_milestones", "--uninvoiced"),
    ("ar_transactions", "--ar-transactions"),
    ("gl_lines", "--gl-lines"),
)


def _scale_options(f):
    for name, flag in reversed(SCALE_OVERRIDES):
        f = click.option(flag, name, type=click.IntRange(min=0), default=None, help=f"Override the scale's {name.replace('_', ' ')}.")(f)
    return f


@sim.command("seed")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Simulator database file to create.")
@click.option("--scale", "scale_name", type=click.Choice(["small", "medium", "large"]), default="small", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same world (and same organization id).")
@click.option("--extract", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Where to write the legacy extract CSV [default: next to the database].")
@click.option("--force", is_flag=True, help="Replace an existing database file.")
@_scale_options
def sim_seed(db: Path, scale_name: str, seed: int, extract: Path | None, force: bool, **overrides) -> None:
    """Build a deterministic Contoso-style world and its legacy extract."""
    seed_database(db, scale_name, seed, extract, overrides, force)


@sim.command("serve")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Seeded simulator database.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--window-scale", type=click.FloatRange(min=0.0001, max=1.0), default=1.0, show_default=True, help="Shrink the 300 s service-protection window (rates stay as documented).")
def sim_serve(db: Path, port: int, window_scale: float) -> None:
    """Serve the simulator on 127.0.0.1 until interrupted."""
    from cutover.sim.protection import Limits
    from cutover.sim.server import serve_forever

    if not db.exists():
        fail(f"no simulator database at {db}; create one with: cutover sim seed --db {db}", EXIT_USAGE)
    limits = Limits.scaled(window_scale) if window_scale != 1.0 else None
    try:
        serve_forever(db, port, limits, on_ready=lambda line: click.echo(line, nl=True) or sys.stdout.flush())
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        pass


# --- demo -------------------------------------------------------------------------------------------


@main.command()
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path), envvar="CUTOVER_WORKSPACE", default=DEFAULT_WORKSPACE, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
def demo(workspace: Path, port: int) -> None:
    """Seed a small rehearsal world (first time only) and serve it on loopback."""
    from cutover.sim.server import serve_forever

    db = workspace / DEMO_DB
    if not db.exists():
        click.echo(f"creating a small rehearsal world in {db} …")
        seed_database(db, "small", 1, None, {}, force=False)

    def ready(line: str) -> None:
        url = line.split(" ", 2)[-1]
        click.echo(line)
        click.echo(
            f"""
Rehearsal simulator of Dataverse + Finance and Operations + dual-write.
  Dataverse Web API : {url}/api/data/v9.2/
  F&O OData         : {url}/data/
  Admin (no auth)   : {url}/_sim/          maps: {url}/_sim/maps
  Legacy extract    : {default_extract_path(db)}

Get a token and ask who you are:
  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=cutover-rehearsal \\
          -d client_secret=rehearsal-secret -d scope={url}/.default {url}/_sim/token \\
          | python -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {url}/api/data/v9.2/WhoAmI

Press Ctrl+C to stop."""
        )
        sys.stdout.flush()

    try:
        serve_forever(db, port, on_ready=ready)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        click.echo("stopped.")



# --- environment profiles ---------------------------------------------------------------------

workspace_option = click.option(
    "--workspace", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Workspace folder [default: $CUTOVER_WORKSPACE or ./cutover-workspace].",
)

# TOML key -> command-line option, so a validation message points at what the operator typed.
OPTION_OF_KEY = {
    "kind": "--kind", "dataverse_url": "--dataverse-url", "fno_url": "--fno-url", "tenant": "--tenant",
    "client_id": "--client-id", "auth": "--auth", "secret_env": "--secret-env", "cert_path": "--cert",
    "sim_db": "--sim-db", "identities": "--identity", "keyring_service": "--keyring-service",
    "keyring_username": "--keyring-username",
}


def _config_fail(exc) -> None:
    hint = f" (option {OPTION_OF_KEY[exc.key]})" if getattr(exc, "key", None) in OPTION_OF_KEY and exc.line is None else ""
    fail(f"{exc}{hint}", EXIT_USAGE)


def _load(workspace: Path | None):
    from cutover.config import ConfigError, load_config, resolve_workspace

    ws = resolve_workspace(workspace)
    try:
        return ws, load_config(ws)
    except ConfigError as exc:
        _config_fail(exc)


@main.group()
def env() -> None:
    """Environment profiles: where Dataverse and F&O are and how to sign in."""


@env.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["rehearsal", "sandbox", "production"]), required=True)
@click.option("--sim-db", type=click.Path(dir_okay=False), default=None, help="Rehearsal: a simulator database; commands start the simulator themselves.")
@click.option("--dataverse-url", default=None)
@click.option("--fno-url", default=None)
@click.option("--tenant", default=None)
@click.option("--client-id", default=None)
@click.option("--auth", type=click.Choice(["device-code", "client-secret", "certificate", "simulator"]), default=None)
@click.option("--secret-env", default=None, help="Name of the environment variable that holds the client secret.")
@click.option("--keyring-service", default=None, help="OS keyring service holding the secret (instead of --secret-env).")
@click.option("--keyring-username", default=None)
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), default=None, help="Certificate (PEM with private key) for --auth certificate.")
@click.option("--identity", "identities", multiple=True, help="Extra application user (client id) for the write pool; repeatable.")
@click.option("--invoice-create-action", default=None)
@click.option("--invoice-confirm-action", default=None)
@click.option("--replace", is_flag=True, help="Replace an existing profile of the same name.")
@workspace_option
def env_add(name: str, workspace: Path | None, replace: bool, identities: tuple[str, ...], **fields) -> None:
    """Add an environment profile to the workspace's cutover.toml (no secrets are stored)."""
    from cutover.config import ConfigError, Profile, save_config

    ws, config = _load(workspace)
    values = {k: v for k, v in fields.items() if v is not None}
    for key in ("sim_db", "cert_path"):  # typed relative to where the operator stands
        if key in values:
            values[key] = str(Path(values[key]).expanduser().resolve())
    if identities:
        values["identities"] = tuple(identities)
    try:
        profile = Profile(name=name, **values)
        config.add(profile, replace=replace)
        save_config(config)
    except ConfigError as exc:
        _config_fail(exc)
    click.echo(f"added profile '{name}' ({profile.kind}) to {config.path}")
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
    import os

    from cutover.config import ConfigError

    ws, config = _load(workspace)
    try:
        p = config.get(name)
    except ConfigError as exc:
        _config_fail(exc)
    for key, value in p.to_table().items():
        if isinstance(value, dict):
            for k, v in value.items():
                click.echo(f"{key}.{k} = {v}")
        else:
            click.echo(f"{key} = {value}")
    if p.secret_env:
        state = "set" if os.environ.get(p.secret_env) else "NOT set"
        click.echo(f"secret: from environment variable {p.secret_env} ({state})")
    elif p.keyring_service:
        click.echo(f"secret: from the OS keyring, service {p.keyring_service}")
    elif p.is_rehearsal:
        click.echo("secret: the simulator's rehearsal identity")


def _profile(workspace: Path | None, name: str):
    from cutover.config import ConfigError

    ws, config = _load(workspace)
    try:
        return ws, config.get(name)
    except ConfigError as exc:
        _config_fail(exc)


def _show_code(message: str, user_code: str, verification_uri: str) -> None:
    click.echo(f"\n{message}\n(waiting for you to sign in; Ctrl+C cancels)\n", err=True)


def run_environment_command(coro) -> object:
    """Run an async command; map every expected failure to one clear line and an exit code."""
    import asyncio

    from cutover.auth import SignInError
    from cutover.config import ConfigError, FingerprintMismatch
    from cutover.embedded import EmbeddedSimulatorError
    from cutover.transport import ServiceError

    try:
        return asyncio.run(coro)
    except FingerprintMismatch as exc:
        fail(str(exc), EXIT_ENVIRONMENT)
    except ConfigError as exc:
        _config_fail(exc)
    except (SignInError, ServiceError, EmbeddedSimulatorError) as exc:
        fail(str(exc), EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        fail("cancelled", EXIT_ENVIRONMENT)
    except OSError as exc:  # the workspace itself: token cache folder, config file, permissions
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        fail(f"{exc.strerror or exc}{where}: check the workspace folder's ownership and permissions", EXIT_ENVIRONMENT)


@env.command("test")
@click.argument("name")
@click.option("--repin", is_flag=True, help="Accept a different organization id and pin it (the environment was really replaced).")
@workspace_option
def env_test(name: str, workspace: Path | None, repin: bool) -> None:
    """Sign in, call WhoAmI and one F&O read; pin the organization on first success."""
    from cutover.config import pin_fingerprint
    from cutover.session import open_session

    ws, profile = _profile(workspace, name)

    async def test() -> None:
        started = time.perf_counter()
        async with open_session(profile, ws, read_only=True, on_code=_show_code) as session:
            if session.sim_url and profile.embedded_simulator:
                click.echo(f"simulator: {session.sim_url} (database {profile.sim_db_path(ws)})")
            who = await session.dataverse.whoami()
            org = who["OrganizationId"].lower()
            if not repin:
                await session.check_fingerprint()
            click.echo(f"Dataverse: {session.dataverse_root} — organization {org}, user {who['UserId']}")
            rows = 0
            async for page in session.fno.pages("DualWriteProjectConfigurations", cross_company=True):
                rows += len(page)
            click.echo(f"Finance and Operations: {session.fno_root} — {rows} dual-write project configuration(s) readable")
        pinned = pin_fingerprint(ws, name, org, force=repin)
        click.echo(f"ok in {time.perf_counter() - started:.1f} s; profile '{name}' is pinned to organization {pinned.pinned_org_id}")

    run_environment_command(test())


@main.command()
@click.argument("name")
@workspace_option
def login(name: str, workspace: Path | None) -> None:
    """Sign in to an environment (device code over SSH) and cache the tokens in the workspace."""
    from cutover.session import open_session

    ws, profile = _profile(workspace, name)

    async def sign_in() -> None:
        async with open_session(profile, ws, read_only=True, on_code=_show_code) as session:
            for transport in session.transports:
                await transport.tokens.token()
            describe = getattr(session.transports[0].tokens, "describe", None)
            click.echo(f"signed in to '{name}'" + (f": {describe()}" if describe else ""))

    run_environment_command(sign_in())


if __name__ == "__main__":
    main()
