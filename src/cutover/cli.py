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


if __name__ == "__main__":
    main()
