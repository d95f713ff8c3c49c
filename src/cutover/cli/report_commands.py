"""`cutover demo|tui`, `cutover verify|signoff` and `cutover journal verify|export`: the console,
the validation suite and its evidence pack, and the journal from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cutover import config as configuration
from cutover.errors import EXIT_CHECKS_FAILED, UsageError

from . import ENV_VAR, cutover_date_option, env_option, main, mapping_option, source_option, workspace_option

# --- the console ------------------------------------------------------------------------------


@main.command()
@workspace_option
def demo(workspace: Path | None) -> None:
    """Seed a small rehearsal world (first time only) and open the console on it."""
    from cutover.demo import prepare_demo
    from cutover.tui.app import run_tui

    world = prepare_demo(configuration.resolve_workspace(workspace))
    if world.note:
        click.echo(f"note: {world.note}", err=True)
    sys.exit(run_tui(world.workspace, world.profile, world.extract, None, cutover_date=world.cutover_date))


@main.command()
@click.option(
    "--env",
    "env_name",
    envvar=ENV_VAR,
    default=None,
    metavar="NAME",
    help=f"Environment to open [default: ${ENV_VAR}, else a picker].",
)
@workspace_option
@source_option(help="The legacy extract (a resumed run keeps its own).")
@mapping_option()
@cutover_date_option()
@click.option(
    "--screenshot",
    "screenshot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Render the runbook screen into an SVG file and exit.",
)
def tui(env_name, workspace, source, mapping_path, cutover_date, screenshot_path) -> None:
    """The full-screen operator console: the runbook, step by step, resumable."""
    from cutover.tui.app import run_tui, screenshot

    ws = configuration.resolve_workspace(workspace)
    if screenshot_path is not None:
        click.echo(screenshot(ws, env_name, screenshot_path))
        return
    sys.exit(run_tui(ws, env_name, source, mapping_path, cutover_date=cutover_date))


# --- verification and sign-off ------------------------------------------------------------------


@main.command()
@env_option
@source_option(required=True, help="The legacy extract the cutover ran with.")
@mapping_option()
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="New folder for the evidence pack [default: <workspace>/reports/<UTC timestamp>/].",
)
@workspace_option
def verify(
    env_name: str, source: Path, mapping_path: Path | None, report_dir: Path | None, workspace: Path | None
) -> None:
    """Run the validation suite read-only and write the evidence pack (exit 0 all passed; 1 failed or not verified)."""
    from cutover.verification import run_verification

    result = run_verification(configuration.resolve_workspace(workspace), env_name, source, mapping_path, report_dir)
    for line in result.lines():
        click.echo(line)
    if result.exit_code:
        click.get_current_context().exit(result.exit_code)


@main.command()
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The evidence pack to sign.",
)
@click.option("--name", default=None, help="Who signs (recorded with the pack's hash).")
@click.option("--role", default=None, help="In what role, e.g. 'finance controller'.")
@click.option(
    "--check",
    "check_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Only check a pack: its files and its signatures.",
)
def signoff(report_dir: Path | None, name: str | None, role: str | None, check_dir: Path | None) -> None:
    """Sign an evidence pack (--report DIR --name NAME --role ROLE), or check one (--check DIR)."""
    from cutover import signoff as signing

    if check_dir is not None:
        if report_dir or name or role:
            raise UsageError("--check DIR stands alone", fix="sign with --report DIR --name NAME --role ROLE")
        state = signing.check(check_dir)
        click.echo("\n".join(state.lines()))
        if not state.accepted:
            click.get_current_context().exit(EXIT_CHECKS_FAILED)
        return
    if not (report_dir and name and role):
        raise UsageError("sign with --report DIR --name NAME --role ROLE, or check with --check DIR")
    signature = signing.sign(report_dir, name, role)
    click.echo(
        f"signed by {signature.name} ({signature.role}) at {signature.signed_utc}; manifest sha256 {signature.manifest_sha256}"
    )
    click.echo("\n".join(signing.check(report_dir).lines()))


# --- the journal -----------------------------------------------------------------------------------


@main.group()
def journal() -> None:
    """The run's append-only, hash-chained journal."""


@journal.command("verify")
@workspace_option
def journal_verify(workspace: Path | None) -> None:
    """Recompute the chain; name the first edited, inserted, deleted or moved row (exit 1)."""
    from cutover.journal import Journal

    with Journal.open(configuration.resolve_workspace(workspace), create=False) as book:
        result = book.verify()
        recorded = book.recorded_head()
    if result.ok:
        click.echo(
            f"journal ok: {result.rows:,} rows, head {result.head}"
            + ("" if recorded else " (no head recorded outside yet)")
        )
        return
    click.echo(f"journal NOT ok: {result.problem}")
    click.get_current_context().exit(EXIT_CHECKS_FAILED)


@journal.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--env", "env_name", default=None, metavar="NAME", help="Only this environment's rows.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A new file to write [default: standard output].",
)
@workspace_option
def journal_export(fmt: str, env_name: str | None, output: Path | None, workspace: Path | None) -> None:
    """Every journal row as JSON lines or CSV (a new file is never an existing one)."""
    from cutover.journal import Journal

    with Journal.open(configuration.resolve_workspace(workspace), create=False) as book:
        text = book.export(fmt, env_name)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise UsageError(
            f"{output} already exists", fix="choose a new file name; an existing file is never overwritten"
        ) from None
    click.echo(f"wrote {output}")
