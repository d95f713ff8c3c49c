"""The `cutover` command. Thin: parse arguments, call the core, print, set the exit code.

Errors are mapped to exit codes in one place (:class:`CutoverGroup`), by reading the error's
own ``exit_code`` (:mod:`cutover.errors`): 0 ok, 1 checks failed, 2 bad input or usage,
3 environment or connection error, 4 the tool itself failed — then the traceback goes to a
log file in the workspace and the message names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from cutover import config as configuration
from cutover.errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, CutoverError, exit_code_of

DEMO_DB = "rehearsal.sqlite"
_WORKSPACE_KEY = "cutover.workspace"


# --- one error path ---------------------------------------------------------------------------------


def _crash_log(ctx: click.Context, exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected exception; the workspace's logs/ if it exists, else temp."""
    workspace = ctx.meta.get(_WORKSPACE_KEY) or configuration.resolve_workspace(None)
    folder = Path(workspace) / "logs" if Path(workspace).is_dir() else Path(tempfile.gettempdir())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cutover-crash-{stamp}-{os.getpid()}.log"
        with open(path, "x", encoding="utf-8") as f:
            f.write(f"cutover {' '.join(sys.argv[1:])}\n")
            f.write("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


class CutoverGroup(click.Group):
    """The top-level group: the one place where errors become messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CutoverError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("cancelled", err=True)
            ctx.exit(exit_code_of(KeyboardInterrupt()))
        except OSError as exc:  # the workspace itself: folders, permissions, a full disk
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(
                f"error: {exc.strerror or exc}{where}: check the folder's ownership, permissions and free space",
                err=True,
            )
            ctx.exit(EXIT_ENVIRONMENT)
        except Exception as exc:
            log = _crash_log(ctx, exc)
            where = f"; details in {log}" if log else ""
            click.echo(f"internal error: {type(exc).__name__}: {exc}{where}", err=True)
            ctx.exit(EXIT_INTERNAL)


def _remember_workspace(ctx: click.Context, _param, value):
    if value is not None:
        ctx.meta[_WORKSPACE_KEY] = configuration.resolve_workspace(value)
    return value


workspace_option = click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_remember_workspace,
    help=f"Workspace folder [default: ${configuration.WORKSPACE_ENV} or ./{configuration.DEFAULT_WORKSPACE}].",
)

#: The environment a command acts on: ``--env NAME``, default ``$CUTOVER_ENV``. Every command
#: that acts on an environment takes it (``@env_option``; the value arrives as ``env_name``).
ENV_VAR = "CUTOVER_ENV"
env_option = click.option(
    "--env",
    "env_name",
    envvar=ENV_VAR,
    required=True,
    metavar="NAME",
    help=f"Environment profile to act on [default: ${ENV_VAR}].",
)


def run_async(coro):
    """Run one async command to completion on a fresh event loop."""
    return asyncio.run(coro)


def _interrupt(signum, _frame) -> None:
    """SIGTERM and SIGHUP (the SSH connection dropped) take the path of Ctrl+C, so every
    `with`/`async with` unwinds: a simulator this command started is stopped, files are closed."""
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    os.kill(os.getpid(), signal.SIGINT)


@click.group(cls=CutoverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cutover")
def main() -> None:
    """Migrate invoiced fixed-price billing milestones into Project Operations without touching AR or GL, and prove it."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _interrupt)


# --- simulator ----------------------------------------------------------------------------------


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


@main.command()
@workspace_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True)
def demo(workspace: Path | None, port: int) -> None:
    """Seed a small rehearsal world (first time only) and serve it on loopback."""
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


# --- environment profiles ---------------------------------------------------------------------

# TOML key -> command-line option, so a validation message points at what the operator typed.
OPTION_OF_KEY = {
    "kind": "--kind", "dataverse_url": "--dataverse-url", "fno_url": "--fno-url", "tenant": "--tenant",
    "client_id": "--client-id", "auth": "--auth", "secret_env": "--secret-env", "cert_path": "--cert",
    "sim_db": "--sim-db", "identities": "--identity", "keyring_service": "--keyring-service",
    "keyring_username": "--keyring-username", "invoice_create_action": "--invoice-create-action",
    "invoice_confirm_action": "--invoice-confirm-action",
}  # fmt: skip


def _with_option_hint(exc: configuration.ConfigError) -> configuration.ConfigError:
    """Name the command-line option when a profile value typed on the command line is wrong."""
    if exc.key in OPTION_OF_KEY and exc.line is None:
        exc.message = f"{exc.message} (option {OPTION_OF_KEY[exc.key]})"
    return exc


def _load(workspace: Path | None) -> tuple[Path, configuration.Config]:
    ws = configuration.resolve_workspace(workspace)
    return ws, configuration.load_config(ws)


def _profile(workspace: Path | None, name: str):
    ws, config = _load(workspace)
    return ws, config.get(name)


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


def _show_code(message: str, user_code: str, verification_uri: str) -> None:
    click.echo(f"\n{message}\n(waiting for you to sign in; Ctrl+C cancels)\n", err=True)


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


# --- migrate ---------------------------------------------------------------------------------------


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
@click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The legacy extract (CSV, XLSX, Parquet).",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Mapping file for the extract's dialect.",
)
@click.option(
    "--cutover-date", default=None, metavar="YYYY-MM-DD", help="Rows dated after it are refused [default: today]."
)
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


if __name__ == "__main__":
    main()
