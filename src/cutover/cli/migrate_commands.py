"""`cutover migrate`: the milestone load, with a live progress display."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import click

from cutover.errors import CutoverError

from . import (
    _profile,
    _show_code,
    cutover_date_option,
    env_option,
    main,
    mapping_option,
    run_async,
    source_option,
    workspace_option,
)


def _errors_path(ws: Path, env_name: str, given: Path | None) -> Path:
    """Where the error file goes: the given path (refused now if it exists), else a new file
    under <workspace>/runs/. Never an existing file."""
    if given is not None:
        if given.exists():
            raise CutoverError(
                "the error file already exists and is never overwritten",
                where=str(given),
                fix="choose another path with --errors, or move the old file",
            )
        return given
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = ws / "runs"
    for n in range(1, 1000):
        path = folder / f"migrate-{env_name}-{stamp}{'' if n == 1 else f'-{n}'}.errors.csv"
        if not path.exists():
            return path
    raise CutoverError(f"no free error file name in {folder}")


class _ErrorFile:
    """The run's error file (the extract's problem format: file,row,column,value,rule,message),
    created new when there is something to write, never overwriting."""

    def __init__(self, path: Path):
        self.path = path
        self.written: Path | None = None

    def write(self, problems: list) -> Path | None:
        from cutover.source import write_problems

        if not problems:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.written = write_problems(problems, self.path)
        return self.written


def _load_problems(plan, failures) -> list:
    """Conflicts of the plan and failures of the load, as rows of the error file."""
    from cutover.source import Problem

    out = [
        Problem(r["_file"], r["_row"], None, r["legacy_id"], r["rule"], r["reason"])
        for r in plan.conflicts.iter_rows(named=True)
    ]
    for f in failures:
        status = f"{f.status} " if f.status is not None else ""
        out.append(
            Problem(
                f.file or "",
                f.row,
                None,
                f.legacy_id,
                f"load.{f.code or 'failed'}",
                f"{status}{f.code or ''}: {f.message}".strip(),
            )
        )
    return out


def _echo_plan(plan) -> None:
    click.echo(f"plan: {plan.summary()}")
    for r in plan.conflicts.head(10).iter_rows(named=True):
        click.echo(f"  conflict row {r['_row']} ({r['legacy_id']}, {r['rule']}): {r['reason']}")
    if plan.conflicts.height > 10:
        click.echo(f"  … and {plan.conflicts.height - 10:,} more conflicts")


def _progress_display(console):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    return Bar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rec/s"),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("throttled {task.fields[throttled]}"),
        TextColumn("failed {task.fields[failed]}"),
        console=console,
        transient=False,
    )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


async def _migrate(
    ws: Path,
    profile,
    *,
    source: Path,
    mapping_path: Path | None,
    cutover_date: str | None,
    dry_run: bool,
    errors: _ErrorFile,
    skip_map_check: bool,
    confirm_production: str | None,
    chunk: int | None,
    pacing,
) -> None:
    from rich.console import Console

    from cutover import events as ev
    from cutover.errors import ChecksFailed, InputError
    from cutover.mapcheck import check_milestone_map
    from cutover.migrate import Failure, plan_migration, read_back, read_existing, run_migration
    from cutover.session import open_session
    from cutover.source import check_file, fetch_reference, load_mapping, validate

    # the input first, whatever state the environment is in
    mapping = load_mapping(mapping_path) if mapping_path else None
    raw, checked = check_file(source, mapping, cutover_date)
    if not checked.ok:
        written = errors.write(checked.problems)
        by_rule = ", ".join(f"{rule} {n}" for rule, n in checked.problems_by_rule().items())
        raise InputError(
            f"the extract has {len(checked.problems):,} problem(s) ({by_rule}); nothing was read from or written to "
            f"'{profile.name}'",
            where=str(source),
            fix=f"see {written} for every row",
        )
    click.echo(f"read {checked.rows_read:,} rows from {source}: file rules passed")

    console = Console(stderr=True)
    async with open_session(profile, ws, read_only=dry_run, write_pool=not dry_run, on_code=_show_code) as session:
        organization = await session.check_fingerprint()
        click.echo(f"environment '{profile.name}': organization {organization}")
        reference = await fetch_reference(session.dataverse, session.fno, raw)
        validated = validate(raw, reference, mapping=mapping, cutover_date=cutover_date)
        if not validated.ok:
            written = errors.write(validated.problems)
            by_rule = ", ".join(f"{rule} {n}" for rule, n in validated.problems_by_rule().items())
            raise InputError(
                f"the extract has {len(validated.problems):,} problem(s) against '{profile.name}' ({by_rule}); "
                "nothing was written",
                where=str(source),
                fix=f"see {written} for every row",
            )
        plan = plan_migration(validated, await read_existing(session))
        _echo_plan(plan)

        if dry_run:
            check = await check_milestone_map(session.dataverse)
            click.echo(f"map check: {check.describe()}")
            click.echo("dry run: nothing was written")
            if plan.conflicts.height:
                written = errors.write(_load_problems(plan, []))
                raise ChecksFailed(f"{plan.conflicts.height:,} conflict(s) would be left untouched; see {written}")
            return

        failures: list = []
        outcome = None
        try:
            with contextlib.ExitStack() as stack:
                bar = task = None  # the live display starts with the load itself
                async for event in run_migration(
                    session,
                    plan,
                    confirm_production=confirm_production,
                    skip_map_check=skip_map_check,
                    pacing=pacing,
                    chunk=chunk,
                ):
                    if isinstance(event, ev.PhaseStarted) and event.phase == "load":
                        bar = stack.enter_context(_progress_display(console))
                        task = bar.add_task(
                            "load", total=max(plan.to_write, 1), rate="-", eta="-", throttled=0, failed=0
                        )
                    elif isinstance(event, ev.Progress) and bar is not None:
                        bar.update(
                            task,
                            completed=event.done,
                            total=max(event.total, 1),
                            rate=f"{event.rate:,.0f}",
                            eta=_eta(event.eta),
                            throttled=event.throttled,
                            failed=event.failed,
                        )
                    elif isinstance(event, ev.RecordFailed):
                        failures.append(event)
                    elif isinstance(event, ev.PhaseFinished) and event.phase in ("map-check", "resolve"):
                        (bar.console if bar else console).print(f"{event.phase}: {event.detail}")
                    elif isinstance(event, ev.Notice) and event.level == "warning":
                        (bar.console if bar else console).print(f"warning: {event.message}")
                    elif isinstance(event, ev.MigrationFinished):
                        outcome = event.outcome
        finally:  # also on Ctrl+C or a stopped load: what failed so far is in the error file
            if failures or plan.conflicts.height:
                errors.write(
                    _load_problems(
                        plan,
                        [Failure(e.legacy_id, e.key, e.file, e.row, e.status, e.code, e.message) for e in failures],
                    )
                )
        assert outcome is not None
        click.echo(
            f"load: {outcome.summary()} in {outcome.seconds:.1f} s ({outcome.requests:,} requests, {outcome.throttled:,} throttled)"
        )
        if outcome.confirmed_by_read_back or outcome.resent_after_read_back:
            click.echo(
                f"  lost answers: {outcome.confirmed_by_read_back:,} confirmed by reading back, "
                f"{outcome.resent_after_read_back:,} sent again after reading back"
            )
        back = await read_back(session, validated)
        for line in back.summary():
            click.echo(line)
        if errors.written:
            click.echo(f"errors: {errors.written}")
        if not outcome.ok or not back.ok:
            raise ChecksFailed(
                f"{len(outcome.failures):,} record(s) failed, {outcome.conflicts:,} conflict(s)"
                + ("" if back.ok else f", {back.expected - back.found:,} missing in Dataverse")
                + (f"; see {errors.written}" if errors.written else "")
            )


@main.command()
@env_option
@source_option(required=True)
@mapping_option()
@cutover_date_option()
@click.option("--dry-run", is_flag=True, help="Do everything but write; print the plan.")
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Error file to create (never overwritten) [default: a new file under <workspace>/runs/].",
)
@click.option(
    "--skip-map-check", is_flag=True, help="Load even if the milestone map is not on a cutover version (rehearsals)."
)
@click.option(
    "--confirm-production", default=None, metavar="NAME", help="Required for a production profile: its name again."
)
@click.option("--chunk", type=click.IntRange(1, 1000), default=None, help="Records per bulk request [default: 1000].")
@click.option("--no-pace", is_flag=True, help="Do not pace the identities to the service-protection window.")
@click.option(
    "--pace-window-scale",
    type=click.FloatRange(min=0.0001, max=1.0),
    default=1.0,
    show_default=True,
    help="The window scale the pacing assumes (a simulator served with --window-scale F).",
)
@workspace_option
def migrate(
    env_name: str,
    source: Path,
    mapping_path: Path | None,
    cutover_date: str | None,
    dry_run: bool,
    errors_path: Path | None,
    skip_map_check: bool,
    confirm_production: str | None,
    chunk: int | None,
    no_pace: bool,
    pace_window_scale: float,
    workspace: Path | None,
) -> None:
    """Load the extract's invoiced milestones into Dataverse as Ready for invoicing (read, validate, plan, load, read back)."""
    from cutover.bulk import Pacing
    from cutover.migrate import check_production

    ws, profile = _profile(workspace, env_name)
    if not dry_run:
        check_production(profile, confirm_production)
    errors = _ErrorFile(_errors_path(ws, env_name, errors_path))
    pacing = None if no_pace else Pacing(window_scale=pace_window_scale)
    run_async(
        _migrate(
            ws,
            profile,
            source=source,
            mapping_path=mapping_path,
            cutover_date=cutover_date,
            dry_run=dry_run,
            errors=errors,
            skip_map_check=skip_map_check,
            confirm_production=confirm_production,
            chunk=chunk,
            pacing=pacing,
        )
    )
