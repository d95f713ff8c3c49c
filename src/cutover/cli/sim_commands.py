"""`cutover sim seed|serve|demo`: the rehearsal simulator from the command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cutover import config as configuration
from cutover.errors import CutoverError

from . import DEMO_DB, main, workspace_option


@main.group()
def sim() -> None:
    """The rehearsal simulator of Dataverse, Finance and Operations and dual-write."""


def _progress(stage: str, done: int, total: int) -> None:
    if total:
        click.echo(f"\r  {stage}: {done:,}/{total:,}".ljust(60), err=True, nl=done >= total)


def _seed(db: Path, *, scale: str, seed: int, extract: Path | None, overrides: dict, force: bool):
    from cutover.sim import worldfile

    started = time.perf_counter()
    summary = worldfile.seed_database(
        db, scale=scale, seed=seed, extract=extract, overrides=overrides, force=force, progress=_progress
    )
    click.echo(
        f"seeded {db} in {time.perf_counter() - started:.1f} s: organization {summary.organization_id}, "
        f"{summary.contracts:,} contracts, {summary.invoiced_milestones:,} invoiced + {summary.uninvoiced_milestones:,} "
        f"un-invoiced legacy milestones, {summary.ar_transactions:,} AR transactions, {summary.gl_lines:,} GL lines"
    )
    click.echo(f"legacy extract: {summary.extract_path}")
    return summary


def _scale_options(f):
    from cutover.sim.worldfile import SCALE_OVERRIDES

    for name, flag in reversed(SCALE_OVERRIDES):
        f = click.option(
            flag, name, type=click.IntRange(min=0), default=None, help=f"Override the scale's {name.replace('_', ' ')}."
        )(f)
    return f


def _scale_names() -> list[str]:
    from cutover.sim.worldfile import SCALE_NAMES

    return list(SCALE_NAMES)


@sim.command("seed")
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Simulator database file to create.",
)
@click.option("--scale", "scale_name", type=click.Choice(_scale_names()), default="small", show_default=True)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Same seed, same world (and same organization id)."
)
@click.option(
    "--extract",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the legacy extract CSV [default: next to the database].",
)
@click.option("--force", is_flag=True, help="Replace an existing simulator database.")
@_scale_options
def sim_seed(db: Path, scale_name: str, seed: int, extract: Path | None, force: bool, **overrides) -> None:
    """Build a deterministic Contoso-style world and its legacy extract."""
    chosen = {k: v for k, v in overrides.items() if v is not None}
    _seed(db, scale=scale_name, seed=seed, extract=extract, overrides=chosen, force=force)


@sim.command("serve", context_settings={"ignore_unknown_options": True})
@click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Seeded simulator database."
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--window-scale",
    type=click.FloatRange(min=0.0001, max=1.0),
    default=1.0,
    show_default=True,
    help="Shrink the 300 s service-protection window (rates stay as documented).",
)
def sim_serve(db: Path, port: int, window_scale: float) -> None:
    """Serve the simulator on 127.0.0.1 until interrupted (same as `python -m cutover.sim serve`)."""
    from cutover.sim.__main__ import main as simulator_main

    args = ["serve", "--db", str(db), "--port", str(port)]
    if window_scale != 1.0:
        args += ["--window-scale", repr(window_scale)]
    sys.exit(simulator_main(args))


# --- demo -------------------------------------------------------------------------------------------


def _demo_banner(url: str, extract: Path, admin_token: str | None) -> str:
    return f"""
Rehearsal simulator of Dataverse + Finance and Operations + dual-write.
  Dataverse Web API : {url}/api/data/v9.2/
  F&O OData         : {url}/data/
  Admin             : {url}/_sim/          maps: {url}/_sim/maps
  Admin token       : {admin_token or "(none)"}
  Legacy extract    : {extract}

Look at the dual-write maps (the admin surface wants the token and JSON):
  curl -s -H 'X-Cutover-Admin: {admin_token or ""}' -H 'Content-Type: application/json' {url}/_sim/maps

Get a token and ask who you are:
  TOKEN=$(curl -s -d grant_type=client_credentials -d client_id=cutover-rehearsal \\
          -d client_secret=rehearsal-secret -d scope={url}/.default {url}/_sim/token \\
          | python -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {url}/api/data/v9.2/WhoAmI

Press Ctrl+C to stop."""


@sim.command("demo")
@workspace_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
def sim_demo(workspace: Path | None, port: int) -> None:
    """Seed a small rehearsal world (first time only) and serve it on loopback, to explore with curl."""
    from cutover.sim.worldfile import default_extract_path
    from cutover.simprocess import SimulatorProcess

    db = configuration.resolve_workspace(workspace) / DEMO_DB
    if not db.exists():
        click.echo(f"creating a small rehearsal world in {db} …")
        _seed(db, scale="small", seed=1, extract=None, overrides={}, force=False)
    simulator = SimulatorProcess(db, port=port)
    with simulator as url:
        click.echo(f"listening on {url}")
        click.echo(_demo_banner(url, default_extract_path(db), simulator.admin_token))
        try:
            while simulator.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("stopped.")
            return
    raise CutoverError("the simulator stopped unexpectedly")
