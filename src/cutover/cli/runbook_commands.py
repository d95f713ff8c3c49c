"""`cutover run|status|snapshot|invoice|rollback|rehearse`: the runbook from the terminal.

- ``run`` walks the runbook (:mod:`cutover.engine`) — the headless twin of the TUI: it takes the
  workspace's writer lock, prints each step, does the automatic ones with live progress, shows
  the click path of a manual one and asks for a named attestation (:class:`CliOperator`), prints
  the journal head at each step's end, and resumes where it stopped when run again.
- ``status`` reads the journal (no lock): each step's state, what comes next, the head and
  whether the chain verifies.
- ``snapshot``, ``invoice``, ``rollback``: the operations of single steps, for when a person
  drives them by hand (rollback: before the point of no return).
- ``rehearse``: a whole night against a fresh simulator world (:mod:`cutover.rehearse`).

Thin, like every command module: parse, call the core, print; errors go up to the one error
path (:class:`cutover.cli.CutoverGroup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from cutover.engine import journal_data
from cutover.errors import ChecksFailed, InputError, UsageError

from . import (
    _profile,
    _remember_workspace,
    _show_code,
    cutover_date_option,
    env_option,
    main,
    mapping_option,
    run_async,
    source_option,
    workspace_option,
)
from .migrate_commands import _eta, _progress_display

# --- shared ------------------------------------------------------------------------------------


def _runbook():
    """The whole runbook `cutover run` walks: the procedure, then verify and sign-off."""
    from cutover.runbook.steps import RUNBOOK
    from cutover.runbook.verify_steps import VERIFY_STEPS

    if all(s.id in RUNBOOK.ids for s in VERIFY_STEPS):
        return RUNBOOK
    return RUNBOOK.extended(*VERIFY_STEPS)


def _check_step(runbook, step: str | None) -> str | None:
    if step is not None and step not in runbook.ids:
        raise UsageError(f"--until {step}: no such step", fix=f"choose from: {', '.join(runbook.ids)}")
    return step


def _stdin_is_terminal() -> bool:
    """Whether questions can be asked (tests replace this to answer through CliRunner's input)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _check_production(profile, confirm: str | None, what: str) -> None:
    """A production profile's name given on the command line must be its name."""
    if profile.kind == "production" and confirm is not None and confirm != profile.name:
        raise UsageError(
            f"'{profile.name}' is a production environment and --confirm-production {confirm} is not its name",
            fix=f"type the profile's name again: --confirm-production {profile.name}",
        )
    if profile.kind == "production" and confirm is None and what:
        raise UsageError(
            f"'{profile.name}' is a production environment: {what} needs --confirm-production {profile.name}",
            fix=f"type the profile's name again: --confirm-production {profile.name}",
        )


def _inputs(journal, env: str, source: Path | None, mapping: Path | None, cutover_date: str | None):
    """The run's inputs: the journal's recorded ones win when resuming (files hashed again, so a
    changed file is refused by the engine); otherwise the files given."""
    from cutover.journal import RunInputs

    recorded = journal.run_inputs(env) if journal is not None else None
    if recorded is not None:
        source = source or Path(recorded.extract_path)
        if mapping is None and recorded.mapping_path:
            mapping = Path(recorded.mapping_path)
        cutover_date = cutover_date or recorded.cutover_date
    elif source is None:
        raise UsageError(
            "this environment has no run yet, so there is no legacy extract to use",
            fix="give the extract: --source FILE (and --mapping FILE, --cutover-date D if needed)",
        )
    if not source.is_file():
        raise InputError(
            "the legacy extract is not a file",
            where=str(source),
            fix="give the extract the run started with" if recorded else "check the --source path",
        )
    if mapping is not None and not mapping.is_file():
        raise InputError("the mapping file is not a file", where=str(mapping), fix="check the --mapping path")
    cutover_date = cutover_date or dt.datetime.now(dt.UTC).date().isoformat()
    return RunInputs.of(source, mapping, cutover_date)


run_source = source_option(help="The legacy extract [default: the one the environment's run started with].")
run_mapping = mapping_option(help="Mapping file for the extract's dialect [default: the run's].")
run_date = cutover_date_option(help="Rows dated after it are refused [default: the run's, else today].")
production_option = click.option(
    "--confirm-production", default=None, metavar="NAME", help="A production profile's name again: confirms its writes."
)


async def _validated(session, ws: Path, env: str, source, mapping_path, cutover_date):
    """The validated extract: the given one, else the one the environment's run started with."""
    from cutover.journal import JOURNAL_FILE, Journal
    from cutover.source import load_and_validate

    journal = Journal.open(ws, create=False) if (ws / JOURNAL_FILE).exists() else None
    try:
        inputs = _inputs(journal, env, source, mapping_path, cutover_date)
    finally:
        if journal is not None:
            journal.close()
    _raw, result = await load_and_validate(Path(inputs.extract_path), session, inputs.mapping_path, inputs.cutover_date)
    return inputs, result


# --- the operator on a terminal ------------------------------------------------------------------


class CliOperator:
    """The engine's questions as prompts on the terminal. Without a terminal nothing is asked:
    a manual step stops the run ("waiting for attestation"), and so does a production write
    without ``--confirm-production``."""

    def __init__(self, *, confirm_production: str | None = None, interactive: bool | None = None):
        self.confirmed_name = confirm_production
        self.interactive = _stdin_is_terminal() if interactive is None else interactive
        self.last_name = ""
        self.waiting_for: Any = None  # the step that stopped for lack of a terminal
        self.declined: str | None = None

    async def _ask(self, text: str, **kw) -> str:
        """The answer, stripped; end of input (Ctrl+D, a closed pipe) answers nothing: the run stops there."""
        try:
            return str(await asyncio.to_thread(click.prompt, text, **kw)).strip()
        except click.exceptions.Abort:
            click.echo("")
            return ""

    async def attest(self, step, evidence):
        from cutover.runbook.model import Kind
        from cutover.runbook.operator import Attestation

        if not self.interactive:
            self.waiting_for = step
            return None
        word = "done" if step.kind is Kind.MANUAL else "yes"
        what = "that you did this" if step.kind is Kind.MANUAL else "that this holds"
        name = await self._ask(
            "  your name (recorded in the journal)", default=self.last_name or None, show_default=bool(self.last_name)
        )
        typed = await self._ask(
            f"  type '{word}' to attest {what} (anything else stops here)", default="", show_default=False
        )
        if not name or typed.lower() != word:
            self.declined = f"{step.id} was not attested"
            return None
        self.last_name = name
        return Attestation(name, f"typed '{word}': {step.title}")

    async def confirm_production(self, step, environment: str) -> bool:
        if self.confirmed_name == environment:
            click.echo(f"  production '{environment}': write confirmed by --confirm-production")
            return True
        if not self.interactive:
            self.declined = f"{step.id} writes to production '{environment}': give --confirm-production {environment}"
            return False
        typed = await self._ask(
            f"  '{environment}' is PRODUCTION and '{step.title}' writes to it. Type the environment's name to go on",
            default="",
            show_default=False,
        )
        if typed != environment:
            self.declined = f"the name typed was not '{environment}'"
            return False
        return True

    async def confirm_point_of_no_return(self, step) -> bool:
        if not self.interactive:
            self.declined = f"{step.id} is the point of no return and needs a person at a terminal to confirm it"
            return False
        click.echo(f"  POINT OF NO RETURN: {step.title}. {step.what}")
        typed = await self._ask("  type 'confirm' to go on (anything else stops here)", default="", show_default=False)
        if typed.lower() != "confirm":
            self.declined = "the point of no return was not confirmed"
            return False
        return True

    async def acknowledge_not_verified(self, step, evidence) -> str | None:
        if not self.interactive:
            self.declined = f"{step.id}: not verified on production, and nobody at a terminal to accept it by name"
            return None
        click.echo(f"  NOT VERIFIED on production: {evidence.summary}")
        name = await self._ask(
            "  name of who accepts this (empty stops here)",
            default=self.last_name or "",
            show_default=bool(self.last_name),
        )
        return name or None


# --- printing the engine's events ----------------------------------------------------------------


class _RunDisplay:
    """Prints the engine's events; the milestone load gets a live bar (as `cutover migrate`)."""

    _HIDDEN = ("ChunkLoaded", "Progress")

    def __init__(self, runbook):
        from rich.console import Console

        self.position = {sid: n for n, sid in enumerate(runbook.ids, 1)}
        self.total = len(runbook)
        self.console = Console(stderr=True)
        self.stack = contextlib.ExitStack()
        self.bar = None
        self.task = None
        self.fix: str | None = None
        self.finished = None  # the RunFinished event
        self.head = None  # the journal's head once the run ended (RunFinished included)

    def close(self) -> None:
        self.stack.close()
        self.bar = None

    def _bar_start(self, total: int) -> None:
        self.close()
        self.bar = self.stack.enter_context(_progress_display(self.console))
        self.task = self.bar.add_task("load", total=max(total, 1), rate="-", eta="-", throttled=0, failed=0)

    def _progress(self, event) -> None:
        f = event.figures or {}
        kind = event.message
        if kind == "dict":  # a mapping payload: its text is its "message" (cutover.engine._progress)
            kind = str(f.get("message") or "")
            if not kind:
                return
        if kind == "PhaseStarted":
            if f.get("phase") == "load":
                click.echo(f"  load: {f.get('detail', '')}")
                self._bar_start(0)
            return
        if kind == "PhaseFinished":
            if f.get("phase") == "load":
                self.close()
            click.echo(f"  {f.get('phase')}: {f.get('detail', '')}")
            return
        if kind == "Progress":
            if self.bar is not None:
                eta = f.get("eta")
                self.bar.update(
                    self.task,
                    completed=int(f.get("done") or 0),
                    total=max(int(f.get("total") or 0), 1),
                    rate=f"{float(f.get('rate') or 0):,.0f}",
                    eta=_eta(float(eta)) if eta not in (None, "") else "-",
                    throttled=f.get("throttled", 0),
                    failed=f.get("failed", 0),
                )
            return
        if kind in self._HIDDEN:
            return
        if "code" in f and "key" in f and "status" in f:  # a record that did not land
            click.echo(f"  failed: {f.get('legacy_id') or f.get('key')}: {f.get('code') or ''} {kind}".rstrip())
            return
        prefix = "warning: " if f.get("level") == "warning" else ""
        click.echo(f"  {prefix}{kind}")

    def show(self, event) -> None:
        from cutover.runbook import events as ev

        if isinstance(event, ev.RunStarted):
            if event.resumed_at:
                click.echo(f"resuming the run of '{event.env}' at {event.resumed_at}")
            else:
                click.echo(f"run of '{event.env}': {len(event.steps)} steps")
        elif isinstance(event, ev.StepStarted):
            self.fix = None
            n = self.position.get(event.step, "?")
            again = " — started before; checking first whether it is already done" if event.resumed else ""
            click.echo(f"\n[{n}/{self.total}] {event.step}: {event.title} ({event.step_kind}){again}")
        elif isinstance(event, ev.StepProgress):
            self._progress(event)
        elif isinstance(event, ev.NeedsAttestation):
            if event.click_path:
                click.echo("  to do by hand: " + " › ".join(event.click_path))
            else:
                click.echo(f"  to confirm by hand: {event.title}")
        elif isinstance(event, ev.Attested):
            click.echo(f"  attested by {event.name}")
        elif isinstance(event, ev.CheckPassed):
            click.echo(f"  check passed: {event.summary}")
        elif isinstance(event, ev.CheckFailed):
            self.close()
            click.echo(f"  CHECK FAILED: {event.summary}")
        elif isinstance(event, ev.NotVerified):
            by = f" (accepted by {event.acknowledged_by})" if event.acknowledged_by else ""
            click.echo(f"  not verified: {event.summary}{by}")
        elif isinstance(event, ev.StepBlocked):
            self.close()
            click.echo(f"  BLOCKED: {event.reason}")
        elif isinstance(event, ev.StepFailed):
            self.close()
            click.echo(f"  FAILED: {event.message}")
            self.fix = event.fix
        elif isinstance(event, ev.StepDone):
            self.close()
            click.echo(f"  done — journal head: row {event.head_seq}, sha256 {event.head_hash}")
        elif isinstance(event, ev.RunFinished):
            self.close()
            self.finished = event


async def _run(
    ws: Path,
    profile,
    *,
    runbook,
    operator,
    inputs,
    unattended: bool,
    faults: tuple[str, ...],
    blind: bool,
    background_delay: float,
) -> Any:
    from cutover.engine import RunContext, run
    from cutover.journal import Journal
    from cutover.rehearsal import prepare_world
    from cutover.session import open_session

    display = _RunDisplay(runbook)
    journal = Journal.open(ws)
    try:
        async with open_session(profile, ws, write_pool=True, on_code=_show_code) as session:
            ctx = RunContext(
                env=profile.name,
                profile=profile,
                workspace=ws,
                journal=journal,
                session=session,
                inputs=inputs,
                rehearsal=unattended,
            )
            first = not any(e.kind == "run.started" for e in journal.entries(profile.name))
            if unattended and first and (faults or blind or background_delay):
                for line in await prepare_world(ctx, faults, long_running=background_delay, blind=blind):
                    click.echo(f"rehearsal: {line}")
            try:
                async for event in run(runbook, ctx, operator):
                    display.show(event)
            finally:
                display.close()
    finally:
        display.head = journal.head()
        journal.close()
    return display


@main.command("run")
@env_option
@run_source
@run_mapping
@run_date
@production_option
@click.option(
    "--unattended",
    is_flag=True,
    hidden=True,
    help="Rehearsal profiles only: the tool performs and attests the manual steps.",
)
@click.option(
    "--rehearsal-fault", "faults", multiple=True, hidden=True, help="A rehearsal mistake (with --unattended)."
)
@click.option("--blind", is_flag=True, hidden=True, help="Rehearsal: withhold map state from every identity.")
@click.option(
    "--background-delay",
    type=click.FloatRange(0, 3600),
    default=0.0,
    hidden=True,
    help="Rehearsal: background invoice jobs (seconds).",
)
@click.option("--until", default=None, metavar="STEP", hidden=True, help="Stop after this step.")
@workspace_option
def run_command(
    env_name: str,
    source: Path | None,
    mapping_path: Path | None,
    cutover_date: str | None,
    confirm_production: str | None,
    unattended: bool,
    faults: tuple[str, ...],
    blind: bool,
    background_delay: float,
    until: str | None,
    workspace: Path | None,
) -> None:
    """Walk the cutover runbook step by step (resumes where the environment's run stopped)."""
    from cutover.journal import Journal, WriterLock
    from cutover.rehearsal import RehearsalOperator, check_faults, rehearsal_runbook

    ws, profile = _profile(workspace, env_name)
    _check_production(profile, confirm_production, "")
    rehearsal_aids = bool(faults or blind or background_delay)
    if unattended and not (profile.is_rehearsal and profile.embedded_simulator):
        raise UsageError(
            f"--unattended is for rehearsal profiles with their own simulator; '{env_name}' is {profile.kind}",
            fix="run it attended: cutover run without --unattended (every manual step asks for a name)",
        )
    if rehearsal_aids and not unattended:
        raise UsageError("rehearsal faults, --blind and --background-delay go with --unattended")
    faults = check_faults(faults)
    runbook = _runbook()
    _check_step(runbook, until)
    if unattended:
        runbook = rehearsal_runbook(runbook, faults)
    if until:
        runbook = runbook.until(until)
    operator = RehearsalOperator() if unattended else CliOperator(confirm_production=confirm_production)

    with WriterLock(ws, env_name, command=f"cutover run --env {env_name}"):
        with Journal.open(ws) as journal:
            inputs = _inputs(journal, env_name, source, mapping_path, cutover_date)
        display = run_async(
            _run(
                ws,
                profile,
                runbook=runbook,
                operator=operator,
                inputs=inputs,
                unattended=unattended,
                faults=faults,
                blind=blind,
                background_delay=background_delay,
            )
        )
    finished = display.finished
    if finished is None:  # the engine always ends with RunFinished; anything else is a bug
        raise RuntimeError("the run ended without its last event")
    if finished.ok:
        last = f" (through {until})" if until else ""
        click.echo(f"\nrun finished{last}: every step done; journal head: {display.head}")
        return
    waiting = getattr(operator, "waiting_for", None)
    if waiting is not None:
        click.echo(
            f"\nwaiting for attestation: {waiting.id} ({waiting.title}) needs a person's name and confirmation; "
            f"run `cutover run --env {env_name}` again from a terminal (or use the TUI) to attest it and go on",
            err=True,
        )
    else:
        declined = getattr(operator, "declined", None)
        click.echo(f"\nstopped at {finished.stopped_at}: {finished.reason}", err=True)
        if declined:
            click.echo(f"  ({declined})", err=True)
        if display.fix:
            click.echo(f"fix: {display.fix}", err=True)
        click.echo(f"the run resumes there: cutover run --env {env_name}", err=True)
    click.echo(f"journal head: {display.head}", err=True)
    click.get_current_context().exit(1)


# --- status --------------------------------------------------------------------------------------


@main.command("status")
@env_option
@workspace_option
def status(env_name: str, workspace: Path | None) -> None:
    """Where the environment's run stands, from the journal (read-only; no lock)."""
    from cutover.engine import first_unfinished, step_states
    from cutover.journal import JOURNAL_FILE, Journal, WriterLock
    from cutover.simprocess import is_alive

    ws, _profile_ = _profile(workspace, env_name)
    if not (ws / JOURNAL_FILE).exists():
        click.echo(f"no run of '{env_name}' yet in {ws} (`cutover run --env {env_name} --source FILE` starts one)")
        return
    runbook = _runbook()
    with Journal.open(ws, create=False) as journal:
        entries = list(journal.entries(env_name))
        states = step_states(journal, env_name, runbook)
        nxt = first_unfinished(journal, env_name, runbook)
        inputs = journal.run_inputs(env_name)
        check = journal.verify()
        head = journal.head()
        recorded = journal.recorded_head()
    click.echo(f"environment '{env_name}' in {ws}")
    if not entries:
        click.echo("no run of this environment in the journal yet")
    if inputs is not None:
        click.echo(
            f"extract: {inputs.extract_path} (sha256 {inputs.extract_sha256[:12]}…), cutover date {inputs.cutover_date}"
            + (f", mapping {inputs.mapping_path}" if inputs.mapping_path else "")
        )
    holder = WriterLock(ws, env_name).holder()
    if holder and is_alive(int(holder.get("pid", 0) or 0)):
        click.echo(
            f"being run now: pid {holder.get('pid')} on {holder.get('host')} ({holder.get('user')}), "
            f"`{holder.get('command')}` since {holder.get('since')}"
        )
    click.echo("steps:")
    width = max(len(s) for s in runbook.ids)
    for step in runbook:
        st = states[step.id]
        if st.finished:
            mark = "done"
        elif st.failed:
            mark = "FAILED" if st.last_event in ("step.failed", "check.failed") else "BLOCKED"
        elif st.started:
            mark = "started"
        else:
            mark = "-"
        who = f"  attested by {st.attested_by}" if st.attested_by else ""
        click.echo(f"  {mark:<8} {step.id:<{width}}  {step.title}{who}")
    if nxt is None and entries:
        click.echo("next: nothing — every step is done")
    elif nxt is not None:
        click.echo(f"next: {nxt}")
    runs = [e for e in entries if e.kind == "run.finished"]
    if runs and not runs[-1].data.get("ok"):
        click.echo(f"last run stopped at {runs[-1].data.get('stopped_at')}: {runs[-1].data.get('reason')}")
    if entries:
        last = entries[-1]
        click.echo(f"last event: row {last.seq} at {last.at}: {last.kind}" + (f" {last.step}" if last.step else ""))
    if head is not None:
        click.echo(f"journal head: row {head.seq}, sha256 {head.hash}")
    if recorded is not None:
        click.echo(f"head recorded outside the journal: row {recorded.seq}, sha256 {recorded.hash}")
    if check.ok:
        click.echo(f"journal chain verifies ({check.rows} rows)")
    else:
        click.echo(f"JOURNAL CHAIN DOES NOT VERIFY: {check.problem}", err=True)
        click.get_current_context().exit(1)


# --- snapshot ------------------------------------------------------------------------------------


async def _snapshot(
    ws: Path, profile, label: str, retake: bool, entities: tuple[str, ...], source, mapping_path, cutover_date
):
    from cutover.session import open_session
    from cutover.snapshot import take_snapshot

    async with open_session(profile, ws, read_only=True, on_code=_show_code) as session:
        organization = await session.check_fingerprint()
        click.echo(f"environment '{profile.name}': organization {organization}")
        if not entities:
            inputs, result = await _validated(session, ws, profile.name, source, mapping_path, cutover_date)
            entities = tuple(sorted(set(result.rows["legal_entity"].to_list())))
            if not entities:
                raise InputError(
                    "the extract has no valid invoiced row, so it names no legal entity",
                    where=inputs.extract_path,
                    fix="give the legal entities with --legal-entity X",
                )
        click.echo(f"legal entities: {', '.join(entities)}")
        seen: dict[str, int] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage == "files" or done - seen.get(stage, 0) >= 50_000 or (total and done >= total):
                seen[stage] = done
                click.echo(f"  {stage}: {done:,}" + (f" of {total:,}" if total else ""))

        return await take_snapshot(
            session.fno,
            ws,
            profile.name,
            label,
            entities,
            retake=retake,
            organization_id=organization,
            progress=progress,
        )


@main.command("snapshot")
@env_option
@click.option("--label", type=click.Choice(["before", "after"]), required=True, help="Which snapshot.")
@click.option("--retake", is_flag=True, help="Take it again; the earlier one is kept beside it.")
@click.option(
    "--legal-entity",
    "legal_entities",
    multiple=True,
    metavar="X",
    help="Legal entity code; repeatable [default: the extract's].",
)
@run_source
@run_mapping
@run_date
@workspace_option
def snapshot(env_name, label, retake, legal_entities, source, mapping_path, cutover_date, workspace) -> None:
    """Read AR and GL of the extract's legal entities into Parquet files with a manifest (read-only)."""
    ws, profile = _profile(workspace, env_name)
    manifest = run_async(
        _snapshot(ws, profile, label, retake, tuple(legal_entities), source, mapping_path, cutover_date)
    )
    click.echo(
        f"snapshot '{label}': {manifest.ar_rows:,} AR and {manifest.gl_rows:,} GL rows in {manifest.directory or ''}"
    )
    if manifest.sha256:
        click.echo(f"manifest sha256 {manifest.sha256}")


# --- invoice ------------------------------------------------------------------------------------


def _invoice_lines(state) -> list[str]:
    from cutover.domain import InvoiceStatus, ProjectInvoiceStatus

    def label(enum, value) -> str:
        try:
            return enum(value).name.replace("_", " ").capitalize()
        except (ValueError, TypeError):
            return "none" if value is None else str(value)

    out = []
    for c in state.contracts:
        counts: dict[str, int] = {}
        for s in c.milestone_statuses.values():
            counts[label(InvoiceStatus, s)] = counts.get(label(InvoiceStatus, s), 0) + 1
        invoice = (
            f"invoice {c.invoice_number or c.invoice_id} {label(ProjectInvoiceStatus, c.invoice_status)}"
            if c.invoice_id
            else "no invoice"
        )
        milestones = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        reason = f" — {c.reason}" if c.reason else ""
        out.append(
            f"  {c.contract_number or c.contract_id}: {invoice}; milestones: {milestones}; next: {c.action}{reason}"
        )
    return out


async def _invoice(ws, profile, *, create, confirm, attested, source, mapping_path, cutover_date, journal) -> Any:
    from cutover.invoicing import check_gates, confirm_invoices, create_invoices, invoice_state, prepare_invoicing
    from cutover.session import open_session

    writing = create or confirm
    async with open_session(profile, ws, read_only=not writing, write_pool=writing, on_code=_show_code) as session:
        organization = await session.check_fingerprint()
        click.echo(f"environment '{profile.name}': organization {organization}")
        _inputs_, result = await _validated(session, ws, profile.name, source, mapping_path, cutover_date)
        migrated = result.rows.select("milestone_id", "contract_id", "amount")
        click.echo(f"the extract's migrated milestones: {migrated.height:,}")

        def record(step: str, payload) -> None:
            message = getattr(payload, "message", None) or str(payload)
            click.echo(f"  {message}")
            if journal is not None:
                journal.append(
                    "step.progress",
                    env=profile.name,
                    step=step,
                    actor=attested,
                    data={"message": message, "figures": journal_data(payload), "via": "cutover invoice"},
                )

        if writing:
            for notice in await check_gates(session, stop_attested=bool(attested)):
                click.echo(("warning: " if notice.level == "warning" else "") + notice.message)
            if create:
                plan = await prepare_invoicing(session, migrated)
                async for payload in create_invoices(session, plan, stop_attested=bool(attested)):
                    record("invoice.create", payload)
            if confirm:
                plan = await prepare_invoicing(session, migrated)
                async for payload in confirm_invoices(session, plan, stop_attested=bool(attested)):
                    record("invoice.confirm", payload)
        return await invoice_state(session, migrated)


@main.command("invoice")
@env_option
@click.option("--create", is_flag=True, help="Create one draft pro-forma invoice per contract.")
@click.option("--confirm", is_flag=True, help="Confirm the drafts (the point of no return).")
@click.option(
    "--maps-stopped-attested",
    "attested",
    default=None,
    metavar="NAME",
    help="Who attests that the milestone, actuals and invoices maps are stopped, where map state cannot be read.",
)
@run_source
@run_mapping
@run_date
@production_option
@workspace_option
def invoice(
    env_name, create, confirm, attested, source, mapping_path, cutover_date, confirm_production, workspace
) -> None:
    """Invoice the migrated milestones (one pro-forma invoice per contract); without --create/--confirm, show where they stand."""
    from cutover.journal import Journal, WriterLock

    ws, profile = _profile(workspace, env_name)
    writing = create or confirm
    _check_production(profile, confirm_production, "invoicing" if writing else "")
    if attested is not None and not attested.strip():
        raise UsageError("--maps-stopped-attested needs a person's name")
    with contextlib.ExitStack() as stack:
        journal = None
        if writing:
            stack.enter_context(WriterLock(ws, env_name, command=f"cutover invoice --env {env_name}"))
            journal = stack.enter_context(Journal.open(ws))
            if attested:
                journal.append(
                    "invoice.maps-stop-attested",
                    env=env_name,
                    actor=attested.strip(),
                    data={
                        "statement": "the milestone, actuals and invoices maps are stopped",
                        "via": "cutover invoice",
                    },
                )
        try:
            state = run_async(
                _invoice(
                    ws,
                    profile,
                    create=create,
                    confirm=confirm,
                    attested=attested.strip() if attested else None,
                    source=source,
                    mapping_path=mapping_path,
                    cutover_date=cutover_date,
                    journal=journal,
                )
            )
        finally:
            if journal is not None:
                journal.record_head()
    click.echo(f"{len(state.contracts):,} contract(s):")
    for line in _invoice_lines(state):
        click.echo(line)
    blocked = [c for c in state.contracts if c.action == "blocked"]
    if blocked:
        raise ChecksFailed(
            f"{len(blocked):,} contract(s) are blocked: "
            + "; ".join(f"{c.contract_number or c.contract_id}: {c.reason}" for c in blocked[:10]),
            fix="see each contract's reason above",
        )


# --- rollback -------------------------------------------------------------------------------------


async def _rollback(ws: Path, profile):
    from cutover.rollback import rollback
    from cutover.session import open_session

    async with open_session(profile, ws, write_pool=True, on_code=_show_code) as session:
        organization = await session.check_fingerprint()
        click.echo(f"environment '{profile.name}': organization {organization}")
        return await rollback(session, ws, profile.name, progress=lambda p: click.echo(f"  {p.message}"))


@main.command("rollback")
@env_option
@source_option(help="The extract the run started with (checked against the journal's SHA-256).")
@production_option
@workspace_option
def rollback_command(
    env_name: str, source: Path | None, confirm_production: str | None, workspace: Path | None
) -> None:
    """Undo the run before the point of no return: delete its drafts and the milestones it created, then verify."""
    from cutover.journal import JOURNAL_FILE, Journal, RunInputs, check_same_inputs

    ws, profile = _profile(workspace, env_name)
    _check_production(profile, confirm_production, "a rollback")
    if source is not None:
        if not source.is_file():
            raise InputError("the legacy extract is not a file", where=str(source))
        recorded = None
        if (ws / JOURNAL_FILE).exists():
            with Journal.open(ws, create=False) as journal:
                recorded = journal.run_inputs(env_name)
        if recorded is None:
            raise InputError(
                f"the journal in {ws} has no run of '{env_name}' to roll back", fix="check --workspace and --env"
            )
        check_same_inputs(
            recorded,
            RunInputs.of(source, Path(recorded.mapping_path) if recorded.mapping_path else None, recorded.cutover_date),
        )
    report = run_async(_rollback(ws, profile))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        click.echo("rollback incomplete: see above", err=True)
        click.get_current_context().exit(1)
    click.echo("rollback complete and verified")


# --- rehearse -------------------------------------------------------------------------------------


def _timing_table(outcome) -> list[str]:
    mine = {t.step: t for t in outcome.timings}
    other = {t.step: t for t in outcome.compared or ()}
    steps = list(mine) + [s for s in other if s not in mine]
    width = max([len(s) for s in steps] + [len("step")])

    def cell(t) -> str:
        if t is None or t.seconds is None:
            return "-"
        text = f"{t.seconds:.2f}"
        if not t.finished:
            text += " stopped"
        elif t.attempts > 1:
            text += f" ({t.attempts}x)"
        return text

    head = f"  {'step':<{width}}  {'seconds':>16}"
    if outcome.compared is not None:
        head += f"  {'compared':>16}"
    out = ["step timings (step.started → step.finished):", head]
    for s in steps:
        line = f"  {s:<{width}}  {cell(mine.get(s)):>16}"
        if outcome.compared is not None:
            line += f"  {cell(other.get(s)):>16}"
        out.append(line)
    total = sum(t.seconds or 0.0 for t in outcome.timings)
    line = f"  {'total':<{width}}  {total:>16.2f}"
    if outcome.compared is not None:
        line += f"  {sum(t.seconds or 0.0 for t in outcome.compared):>16.2f}"
    out.append(line)
    return out


@main.command("rehearse")
@click.option("--scale", type=click.Choice(["small", "medium", "large"]), default="small", show_default=True)
@click.option(
    "--fault", "faults", multiple=True, metavar="NAME", help="A mistake to rehearse; repeatable (see the list below)."
)
@click.option(
    "--blind", is_flag=True, help="Withhold map state from the run: only the validation suite can catch map mistakes."
)
@click.option("--long-running", is_flag=True, help="Invoice create and confirm run as background jobs (3 s).")
@click.option(
    "--compare",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="An earlier rehearsal's folder: its timings beside these.",
)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_remember_workspace,
    help="A new or empty folder [default: a new ./rehearsals/<UTC timestamp>/].",
)
@click.option("--world", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True)
@click.option("--background-delay", type=click.FloatRange(0.01, 3600), default=None, hidden=True)
@click.option("--until", default=None, metavar="STEP", hidden=True)
def rehearse_command(scale, faults, blind, long_running, compare, workspace, world, background_delay, until) -> None:
    """Rehearse the night against a fresh simulator world, with mistakes (--fault), and time every step.

    \b
    Faults:
      skip-cutover-version, milestone-map-left-running, invoices-map-left-running,
      actuals-map-left-running, map-version-not-reverted, maps-not-restarted,
      invoice-integration-async, uninvoiced-row-in-extract, throttle-storm,
      crash-mid-load, crash-mid-invoicing
    """
    from cutover import rehearse as core

    _check_step(_runbook(), until)
    plan = core.Rehearsal(
        workspace=workspace if workspace is not None else core.new_workspace(),
        scale=scale,
        faults=tuple(faults),
        blind=blind,
        long_running=long_running or background_delay is not None,
        background_delay=background_delay if background_delay is not None else core.BACKGROUND_DELAY_S,
        compare=compare,
        world=world,
        until=until or core.LAST_STEP,
    )
    outcome = run_async(core.rehearse(plan, click.echo))
    click.echo("")
    for line in _timing_table(outcome):
        click.echo(line)
    if outcome.ok:
        click.echo(f"\nrehearsal finished: every step through {plan.until} done ({outcome.runs} run(s))")
        click.echo(
            f"next: cutover verify --workspace {outcome.workspace} --env {core.PROFILE} --source {outcome.extract}"
        )
        return
    if outcome.stopped_at:
        click.echo(f"\nrehearsal stopped at {outcome.stopped_at}: {outcome.reason}", err=True)
    else:
        click.echo(f"\nthe rehearsal's run ended with exit code {outcome.exit_code}", err=True)
    click.echo(f"workspace: {outcome.workspace}", err=True)
    click.get_current_context().exit(outcome.exit_code)
