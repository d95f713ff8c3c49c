"""The engine: runs a runbook against an open environment, as one async stream of events.

``async for event in run(runbook, ctx, operator)`` is the single interface that the CLI
(``cutover run``), the TUI and the tests consume. The engine owns the rules that make the
night safe; the steps themselves are data (:mod:`cutover.runbook`).

Rules, in the order a step meets them:

1. **Journal first.** Every event is appended to the journal before it is yielded, so what the
   operator saw is what the journal holds, even if the terminal drops right after.
2. **Same inputs.** The first run records the SHA-256 of the extract and mapping file and the
   cutover date; a resume with other inputs is refused (exit 2) naming what changed.
3. **Resume.** Steps the journal shows finished are skipped. The first unfinished step that
   had started is re-checked first: if its postcondition already holds (the crash came after
   the work), it is finished without being done again; otherwise it runs again (every action
   is idempotent).
4. **Dependencies and gates.** A step whose dependencies are not finished, or whose gate probe
   reads ``failed``, is blocked and the run stops there, saying why. A gate that cannot be read
   (``not-verified``) lets the step go on only because an earlier step was attested; that is
   journaled.
5. **Production.** Before a step that writes, on a production profile, the operator types the
   environment's name again, and the pinned organization is checked right before the write.
6. **Point of no return.** The operator is asked once more.
7. **Doing.** Auto steps run their action (progress events); manual and attest steps wait for
   a named attestation (a rehearsal performs a manual step in the simulator first).
8. **Checking.** The postcondition probe runs on live state. ``failed`` fails the step — also
   when it contradicts an attestation ("the operator says the maps are stopped; F&O says one is
   enabled"). ``not-verified`` is journaled; on production someone must acknowledge it by name.
9. **End of step.** The journal head is recorded outside the database and carried by the
   ``StepDone`` event, so it can be printed.

A failed or blocked step ends the run (``RunFinished(ok=False)``); running again resumes there.
An unexpected exception is journaled as a failed step and re-raised (the CLI exits 4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .config import Profile
from .errors import CutoverError
from .journal import Journal, RunInputs, check_same_inputs
from .runbook.events import (
    Attested,
    CheckFailed,
    CheckPassed,
    EngineEvent,
    NeedsAttestation,
    NotVerified,
    RunFinished,
    RunStarted,
    StepBlocked,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
)
from .runbook.model import Evidence, Kind, Runbook, Step
from .runbook.operator import Operator


@dataclass
class RunContext:
    """What the steps of one run share: the environment, its clients, the journal, the inputs,
    and ``state`` that one step leaves for the next (the validated extract, the plan…)."""

    env: str
    profile: Profile
    workspace: Path
    journal: Journal
    session: Any = None  # cutover.session.Session while the environment is open
    inputs: RunInputs | None = None
    rehearsal: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.profile.kind == "production"


@dataclass(frozen=True)
class StepState:
    """What the journal says about one step of an environment's run."""

    started: bool = False
    finished: bool = False
    failed: bool = False
    attested_by: str | None = None
    last_event: str | None = None


ROLLED_BACK = "rollback.finished"
ROLLBACK_FROM = "migrate.milestones"


def step_states(journal: Journal, env: str, runbook: Runbook) -> dict[str, StepState]:
    """Each step's state as the journal records it (the latest run of ``env``).

    A finished rollback (``rollback.finished``, :mod:`cutover.rollback`) undoes the migration
    and everything after it: those steps read unfinished again, so the next run does them anew."""
    states = {s.id: StepState() for s in runbook}
    ids = list(states)
    for entry in journal.entries(env):
        if entry.kind == ROLLED_BACK and ROLLBACK_FROM in states:
            for sid in ids[ids.index(ROLLBACK_FROM) :]:
                states[sid] = StepState(last_event=ROLLED_BACK)
            continue
        if entry.step not in states:
            continue
        st = states[entry.step]
        if entry.kind == StepStarted.kind:
            st = dataclasses.replace(st, started=True, failed=False)
        elif entry.kind == StepDone.kind:
            st = dataclasses.replace(st, finished=True, failed=False)
        elif entry.kind in (StepFailed.kind, StepBlocked.kind):
            st = dataclasses.replace(st, failed=True)
        elif entry.kind == Attested.kind:
            st = dataclasses.replace(st, attested_by=entry.actor)
        states[entry.step] = dataclasses.replace(st, last_event=entry.kind)
    return states


def first_unfinished(journal: Journal, env: str, runbook: Runbook) -> str | None:
    states = step_states(journal, env, runbook)
    return next((s.id for s in runbook if not states[s.id].finished), None)


def journal_data(value: Any) -> Any:
    """``value`` as journal-safe data: dataclasses and mappings as dicts, sequences as lists,
    floats (rates, seconds — never money) as text with millisecond precision, Decimal as is."""
    if value is None or isinstance(value, (str, int, bool, Decimal)):
        return value
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping):
        return {str(k): journal_data(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: journal_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [journal_data(v) for v in value]
    return str(value)


def _figures(value: Any) -> dict[str, Any]:
    plain = journal_data(value)
    return plain if isinstance(plain, dict) else ({} if plain is None else {"value": plain})


def _progress(step: Step, payload: Any) -> StepProgress:
    if isinstance(payload, StepProgress):
        return payload
    if isinstance(payload, str):
        return StepProgress(step.id, message=payload)
    if isinstance(payload, Mapping):
        figures = _figures({k: v for k, v in payload.items() if k != "message"})
        return StepProgress(step.id, message=str(payload.get("message") or ""), figures=figures)
    message = getattr(payload, "message", None) or getattr(payload, "detail", None) or type(payload).__name__
    return StepProgress(step.id, message=str(message), figures=_figures(payload))


class _Stop(Exception):
    """Internal: the run ends at this step (blocked, failed, or waiting for the operator)."""

    def __init__(self, step: str, reason: str):
        super().__init__(reason)
        self.step = step
        self.reason = reason


async def run(runbook: Runbook, ctx: RunContext, operator: Operator) -> AsyncIterator[EngineEvent]:
    """Run (or resume) ``runbook`` for ``ctx.env``; yields every event after journaling it."""
    journal = ctx.journal

    def record(event: EngineEvent, actor: str | None = None) -> EngineEvent:
        journal.append(event.kind, env=ctx.env, step=event.step, actor=actor, data=event.data())
        return event

    recorded = journal.run_inputs(ctx.env)
    if ctx.inputs is not None:
        check_same_inputs(recorded, ctx.inputs)
    states = step_states(journal, ctx.env, runbook)
    prior_run = any(e.kind == RunStarted.kind for e in journal.entries(ctx.env))
    resume_at = next((s.id for s in runbook if not states[s.id].finished), None)
    inputs = dataclasses.asdict(ctx.inputs) if ctx.inputs is not None else None
    yield record(
        RunStarted(None, env=ctx.env, steps=runbook.ids, resumed_at=resume_at if prior_run else None, inputs=inputs)
    )

    finished = {sid for sid, st in states.items() if st.finished}
    for step in runbook:
        if step.id in finished:
            continue
        try:
            async for event in _run_step(step, ctx, operator, states[step.id], finished, record):
                yield event
        except _Stop as stop:
            head = journal.head()
            yield record(
                RunFinished(
                    None,
                    ok=False,
                    stopped_at=stop.step,
                    reason=stop.reason,
                    head_seq=head.seq if head else 0,
                    head_hash=head.hash if head else "",
                )
            )
            journal.record_head()
            return
        finished.add(step.id)
    head = journal.head()
    event = record(RunFinished(None, ok=True, head_seq=head.seq if head else 0, head_hash=head.hash if head else ""))
    journal.record_head()
    yield event


async def _run_step(step, ctx: RunContext, operator: Operator, state: StepState, finished: set[str], record):
    resumed = state.started and not state.finished
    yield record(StepStarted(step.id, title=step.title, step_kind=str(step.kind), resumed=resumed))

    missing = [d for d in step.depends_on if d not in finished]
    if missing:
        yield record(StepBlocked(step.id, reason=f"{', '.join(missing)} must be finished first"))
        raise _Stop(step.id, f"blocked: {', '.join(missing)} must be finished first")

    if resumed and step.check is not None:
        evidence = await step.check(ctx)
        if evidence.status == "ok":
            yield record(
                CheckPassed(
                    step.id,
                    summary=f"already done before the interruption: {evidence.summary}",
                    figures=_figures(evidence.figures),
                )
            )
            yield _done(step, ctx)
            return

    if step.gate is not None:
        gate = await step.gate(ctx)
        if gate.status == "failed":
            reason = f"{step.gate_rule or 'the gate does not hold'}: {gate.summary}"
            yield record(StepBlocked(step.id, reason=reason))
            raise _Stop(step.id, f"blocked: {reason}")
        if gate.status == "not-verified":
            yield record(
                NotVerified(step.id, summary=f"gate not verified, relying on the earlier attestation: {gate.summary}")
            )

    if step.writes and ctx.production:
        if not await operator.confirm_production(step, ctx.env):
            raise _Stop(step.id, "the production write was not confirmed")
    if step.writes and ctx.session is not None:
        try:
            await ctx.session.check_fingerprint()
        except CutoverError as exc:
            yield record(StepFailed(step.id, message=str(exc), fix=exc.fix))
            raise _Stop(step.id, str(exc)) from None
    if step.point_of_no_return and not await operator.confirm_point_of_no_return(step):
        raise _Stop(step.id, "the point of no return was not confirmed")

    try:
        if step.kind is Kind.AUTO:
            async for payload in step.action(ctx):
                yield record(_progress(step, payload))
        else:
            if ctx.rehearsal and step.rehearse is not None:
                async for payload in step.rehearse(ctx):
                    yield record(_progress(step, payload))
            yield record(NeedsAttestation(step.id, title=step.title, click_path=step.click_path))
            attestation = await operator.attest(step, None)
            if attestation is None:
                raise _Stop(step.id, "waiting for the operator's attestation")
            yield record(
                Attested(step.id, name=attestation.name, statement=attestation.statement), actor=attestation.name
            )
        async for event in _check(step, ctx, operator, record):
            yield event
    except CutoverError as exc:
        yield record(StepFailed(step.id, message=str(exc), fix=exc.fix))
        raise _Stop(step.id, str(exc)) from None
    except _Stop:
        raise
    except Exception as exc:
        record(StepFailed(step.id, message=f"internal error: {type(exc).__name__}: {exc}"))
        ctx.journal.record_head()
        raise
    yield _done(step, ctx)


async def _check(step: Step, ctx: RunContext, operator: Operator, record):
    if step.check is None:
        return
    evidence: Evidence = await step.check(ctx)
    if evidence.status == "ok":
        yield record(CheckPassed(step.id, summary=evidence.summary, figures=_figures(evidence.figures)))
        return
    if evidence.status == "failed":
        summary = evidence.summary
        if step.kind is not Kind.AUTO:
            summary = f"the attestation is contradicted by live state: {summary}"
        yield record(CheckFailed(step.id, summary=summary, figures=_figures(evidence.figures)))
        yield record(StepFailed(step.id, message=summary))
        raise _Stop(step.id, summary)
    acknowledged = None
    if ctx.production:
        acknowledged = await operator.acknowledge_not_verified(step, evidence)
        if not acknowledged:
            yield record(NotVerified(step.id, summary=evidence.summary))
            raise _Stop(step.id, f"not verified and not acknowledged: {evidence.summary}")
    yield record(NotVerified(step.id, summary=evidence.summary, acknowledged_by=acknowledged), actor=acknowledged)


def _done(step: Step, ctx: RunContext) -> StepDone:
    ctx.journal.append(StepDone.kind, env=ctx.env, step=step.id, data={})
    head = ctx.journal.record_head()
    return StepDone(step.id, head_seq=head.seq, head_hash=head.hash)
