"""The last two steps of the runbook: run the validation suite, and have its evidence signed.

- ``verify`` (auto): :func:`cutover.verification.run_verification` over the run's extract and
  mapping file, into a new ``<workspace>/reports/<UTC timestamp>/``; the report folder goes
  into the step's progress (the journal) and ``ctx.state``. A verification that could not judge
  (bad input, the environment, a crash) fails the step with that error's exit code, never as
  "checks failed". Its check: the latest evidence pack of this environment reads ``passed``
  (``failed`` names the scenarios; ``incomplete`` is ``not-verified``).
- ``signoff`` (manual): two people sign the pack with ``cutover signoff``; its check reads
  the signatures (:func:`cutover.signoff.check`): accepted only with two different names on
  an intact pack.

Append them to the runbook: ``RUNBOOK.extended(*VERIFY_STEPS)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_ENVIRONMENT, EXIT_USAGE, EnvironmentProblem, InputError, UsageError
from .model import Evidence, Kind, Step

if TYPE_CHECKING:
    from ..engine import RunContext

__all__ = ["SIGNOFF_STEP", "VERIFY_STEP", "VERIFY_STEPS", "latest_report"]

REPORT_KEY = "verification_report"


def latest_report(ctx: RunContext) -> Path | None:
    """The report folder of this run's verification, else the newest one of this environment."""
    known = ctx.state.get(REPORT_KEY)
    if known and Path(known).is_dir():
        return Path(known)
    from ..verification import REPORTS_DIR

    folder = Path(ctx.workspace) / REPORTS_DIR
    if not folder.is_dir():
        return None
    for candidate in sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True):
        try:
            run = json.loads((candidate / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if run.get("environment") == ctx.env:
            return candidate
    return None


async def _verify(ctx: RunContext) -> AsyncIterator[Any]:
    from ..verification import VerificationCrashed, run_verification

    if ctx.inputs is None:
        raise UsageError("this run has no legacy extract", fix="run with --source FILE (and --mapping FILE if needed)")
    inputs = ctx.inputs
    yield "running the validation suite (read-only)"
    result = await asyncio.to_thread(
        run_verification,
        ctx.workspace,
        ctx.env,
        inputs.extract_path,
        inputs.mapping_path,
        cutover_date=inputs.cutover_date,
    )
    ctx.state[REPORT_KEY] = str(result.report_dir)
    yield {"message": f"verdict {result.verdict}: {result.counts}", "report": str(result.report_dir)}
    if result.exit_code == EXIT_USAGE:
        raise InputError(
            f"the validation suite could not judge: {_first_problem(result)}", where=str(result.report_dir)
        )
    if result.exit_code == EXIT_ENVIRONMENT:
        raise EnvironmentProblem(
            f"the validation suite could not read the environment: {_first_problem(result)}",
            where=str(result.report_dir),
        )
    if result.exit_code > EXIT_ENVIRONMENT:
        raise VerificationCrashed(
            f"the validation suite crashed: {_first_problem(result)}", where=str(result.report_dir)
        )


def _first_problem(result) -> str:
    for s in result.scenarios:
        if s.outcome == "error":
            return f"{s.title}: {s.message}"
    return result.verdict


async def _verified(ctx: RunContext) -> Evidence:
    report = latest_report(ctx)
    if report is None:
        return Evidence.failed("no evidence pack of this environment under reports/")
    try:
        results = json.loads((report / "results.json").read_text(encoding="utf-8"))
        run = json.loads((report / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Evidence.failed(f"the evidence pack {report} cannot be read: {exc}")
    scenarios = results.get("scenarios", [])
    counts = run.get("counts", {})
    figures = {"report": str(report), "counts": counts, "verdict": run.get("verdict")}
    if run.get("verdict") == "passed":
        return Evidence.ok(f"every scenario passed ({len(scenarios)}); evidence pack {report}", **figures)
    bad = [s for s in scenarios if s.get("outcome") != "passed"]
    names = "; ".join(f"{s.get('scenario')} ({s.get('outcome')})" for s in bad[:10])
    if run.get("verdict") == "incomplete":
        return Evidence.not_verified(f"not every scenario could be verified: {names}", **figures)
    return Evidence.failed(f"{len(bad)} scenario(s) did not pass: {names}", **figures)


async def _signed(ctx: RunContext) -> Evidence:
    from ..signoff import check

    report = latest_report(ctx)
    if report is None:
        return Evidence.failed("no evidence pack of this environment to sign")
    result = check(report)
    figures = {"report": str(report), "signatures": [s.as_data() for s in result.signatures]}
    if result.accepted:
        names = ", ".join(f"{s.name} ({s.role})" for s in result.signatures)
        return Evidence.ok(f"evidence pack accepted: signed by {names}", **figures)
    return Evidence.failed("; ".join([*result.problems, *result.missing]) or "not accepted", **figures)


VERIFY_STEP = Step(
    "verify",
    "Run the validation suite",
    Kind.AUTO,
    depends_on=("snapshot.after",),
    what="Run the Gherkin scenarios read-only: milestones complete and correct, AR and GL unchanged, maps back to normal. Writes the evidence pack.",
    action=_verify,
    check=_verified,
    done_when="every scenario passes",
)

SIGNOFF_STEP = Step(
    "signoff",
    "Two approvers sign the evidence pack",
    Kind.MANUAL,
    depends_on=("verify",),
    what="Two different people read report.html and sign the pack; a signature is an attestation bound to the pack's SHA-256.",
    click_path=(
        "sign with `cutover signoff`",
        "cutover signoff --report <the verify step's report folder> --name NAME --role ROLE",
        "a second person does the same with their own name",
    ),
    check=_signed,
    done_when="two different signatures recorded",
)

VERIFY_STEPS: tuple[Step, ...] = (VERIFY_STEP, SIGNOFF_STEP)
