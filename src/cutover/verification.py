"""``cutover verify``: run the validation suite and write the evidence pack a controller signs.

:func:`run_verification` ``(workspace, env, source, mapping=None, report_dir=None, *,
extra_args=()) -> VerificationResult``:

1. **Inputs first.** The profile must exist (``ConfigError``, exit 2), the extract and the
   mapping file must be files (``InputError``, exit 2). The report folder defaults to a new
   ``<workspace>/reports/<UTC timestamp>/``; a folder that exists and is not empty is refused
   (exit 2): an evidence pack is never written over another.
2. **The features as run.** The shipped feature files (``cutover.features``, found through
   :mod:`importlib.resources`, so a wheel works as a checkout does) are copied to
   ``features/shipped/`` in the report folder, and ``<workspace>/features/`` (``*.feature``
   and ``scope.toml``, if the folder exists) to ``features/workspace/``; the suite runs those
   copies, so the pack holds exactly what ran.
3. **pytest in a child process**: ``python -m pytest -p pytest_bdd.plugin -p
   cutover.checks.plugin --pyargs cutover.checks.suite`` with ``-c /dev/null``,
   ``--rootdir`` inside the report folder, ``-p no:cacheprovider``,
   ``--import-mode=importlib``, ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and no
   ``PYTEST_ADDOPTS``: the user's pytest configuration, conftest files and plugins never reach
   it. The suite opens the environment read-only (every transport refuses a write before
   sending it). It writes ``junit.xml`` (pytest's), ``cucumber.json`` (pytest-bdd's),
   ``results.json`` and ``tables/`` (the plugin's); its output goes to ``pytest.log``.
   ``extra_args`` are passed on (e.g. ``("-m", "ar")``).
4. **Verdict and exit code**, from ``results.json``: an error in any scenario decides the
   code its error means (2 bad input — a step the library does not know, a missing snapshot;
   3 the environment — unreachable, wrong organization; 4 a crash: never 1); else any failed
   or not-verified scenario is 1 (verdict ``failed``, or ``incomplete`` when nothing failed
   but something could not be verified); else 0 (``passed``). No scenario run at all is exit 2.
5. **The evidence pack** (:func:`cutover.evidence.build_pack`): ``report.html``, ``run.json``,
   snapshot manifests, the journal export and head, and ``manifest.json`` last.

A child process that could not run the suite at all (pytest's own usage error or internal
error) raises :class:`VerificationCrashed` (exit 4) naming ``pytest.log``. This module starts
pytest but never imports it (nor ``cutover.checks``): the core has no test framework in it.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import load_config
from .errors import (
    EXIT_CHECKS_FAILED,
    EXIT_ENVIRONMENT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    CutoverError,
    InputError,
)

__all__ = [
    "FEATURES_DIR",
    "REPORTS_DIR",
    "ScenarioResult",
    "VerificationCrashed",
    "VerificationResult",
    "default_report_dir",
    "run_verification",
]

REPORTS_DIR = "reports"
FEATURES_DIR = "features"
SHIPPED, WORKSPACE = "shipped", "workspace"
RESULTS_FILE = "results.json"
LOG_FILE = "pytest.log"
SUITE_MODULE = "cutover.checks.suite"
PLUGIN_MODULE = "cutover.checks.plugin"
FEATURE_FILES = ("*.feature", "scope.toml")

PASSED, FAILED, NOT_VERIFIED, ERROR, SKIPPED = "passed", "failed", "not verified", "error", "skipped"


class VerificationCrashed(CutoverError):
    """The validation suite could not run at all (pytest's own error); nothing was judged."""

    exit_code = EXIT_INTERNAL


@dataclass(frozen=True)
class ScenarioResult:
    feature: str
    scenario: str
    outcome: str  # passed, failed, not verified, error, skipped
    message: str = ""
    tags: tuple[str, ...] = ()
    example: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None  # for an error: the exit code it means

    @property
    def title(self) -> str:
        example = ", ".join(f"{k} {v}" for k, v in self.example.items())
        return f"{self.scenario} ({example})" if example else self.scenario


@dataclass(frozen=True)
class VerificationResult:
    """What a verification found, and where its evidence pack is."""

    report_dir: Path
    verdict: str  # passed, failed, incomplete, error
    exit_code: int
    scenarios: tuple[ScenarioResult, ...]
    pytest_exit_status: int

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in (PASSED, FAILED, NOT_VERIFIED, ERROR, SKIPPED)}
        for s in self.scenarios:
            out[s.outcome] = out.get(s.outcome, 0) + 1
        return out

    def outcome_of(self, scenario: str) -> list[str]:
        """The outcomes of the scenarios of that name (an outline has one per example)."""
        return [s.outcome for s in self.scenarios if s.scenario == scenario]

    def lines(self) -> list[str]:
        """The result in a few lines, for a terminal."""
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        out = [f"verdict: {self.verdict.upper()} ({counts})"]
        for s in self.scenarios:
            mark = {PASSED: "ok", FAILED: "FAILED", NOT_VERIFIED: "NOT VERIFIED", ERROR: "ERROR"}.get(
                s.outcome, s.outcome
            )
            out.append(f"  {mark:<12} {s.title}")
            if s.message and s.outcome != PASSED:
                out.append(f"               {s.message[:400]}")
        out.append(f"evidence pack: {self.report_dir}")
        return out


def _utc_stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def default_report_dir(workspace: Path) -> Path:
    """A new ``<workspace>/reports/<UTC timestamp>/`` (not created)."""
    return Path(workspace) / REPORTS_DIR / _utc_stamp()


def _a_file(path: str | Path | None, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser().absolute()
    if not p.is_file():
        raise InputError(f"{what} {p} is not a file", fix=f"give the {what} the cutover ran with")
    return p


def _prepare_report_dir(report_dir: Path) -> Path:
    if report_dir.exists():
        if not report_dir.is_dir():
            raise InputError(f"the report folder {report_dir} is a file", fix="give a new folder")
        if any(report_dir.iterdir()):
            raise InputError(
                f"the report folder {report_dir} is not empty; an evidence pack is never written over another",
                fix="give a new folder, or leave --report out for a new one under <workspace>/reports/",
            )
    report_dir.mkdir(parents=True, exist_ok=True)
    return report_dir


def _copy_features(source: Path, target: Path) -> list[Path]:
    copied = []
    for pattern in FEATURE_FILES:
        for path in sorted(source.rglob(pattern)):
            if not path.is_file():
                continue
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            copied.append(dest)
    return copied


def _features_as_run(workspace: Path, report_dir: Path) -> list[Path]:
    """Copy the shipped and the workspace's features into the report; the folders to run."""
    base = report_dir / FEATURES_DIR
    with importlib.resources.as_file(importlib.resources.files("cutover.features")) as shipped:
        _copy_features(Path(shipped), base / SHIPPED)
    folders = [base / SHIPPED]
    mine = workspace / FEATURES_DIR
    if mine.is_dir() and _copy_features(mine, base / WORKSPACE):
        folders.append(base / WORKSPACE)
    return folders


def pytest_command(
    workspace: Path,
    env: str,
    source: Path,
    mapping: Path | None,
    report_dir: Path,
    folders: Sequence[Path],
    extra_args: Sequence[str] = (),
    cutover_date: str | None = None,
) -> list[str]:
    """The child's command line (see the module docstring)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        os.devnull,
        "--rootdir",
        str(report_dir / FEATURES_DIR),
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_bdd.plugin",
        "-p",
        PLUGIN_MODULE,
        "--import-mode=importlib",
        "-o",
        "junit_suite_name=cutover-verify",
        "-o",
        "junit_family=xunit1",
        "-rN",
        f"--junitxml={report_dir / 'junit.xml'}",
        f"--cucumberjson={report_dir / 'cucumber.json'}",
        f"--cutover-workspace={workspace}",
        f"--cutover-env={env}",
        f"--cutover-source={source}",
        f"--cutover-report={report_dir}",
    ]
    if mapping is not None:
        cmd.append(f"--cutover-mapping={mapping}")
    if cutover_date:
        cmd.append(f"--cutover-cutover-date={cutover_date}")
    for folder in folders:
        cmd.append(f"--cutover-features={folder}")
    cmd += list(extra_args)
    cmd += ["--pyargs", SUITE_MODULE]
    return cmd


def _child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def verdict_of(scenarios: Sequence[ScenarioResult]) -> tuple[str, int]:
    """(verdict, exit code) of a set of scenario results (rules in the module docstring)."""
    errors = [s for s in scenarios if s.outcome == ERROR]
    if errors:
        codes = {s.exit_code or EXIT_INTERNAL for s in errors}
        for code in (EXIT_INTERNAL, EXIT_ENVIRONMENT, EXIT_USAGE):
            if code in codes:
                return ERROR, code
        return ERROR, EXIT_INTERNAL
    ran = [s for s in scenarios if s.outcome != SKIPPED]
    if not ran:
        return ERROR, EXIT_USAGE
    if any(s.outcome == FAILED for s in ran):
        return FAILED, EXIT_CHECKS_FAILED
    if any(s.outcome == NOT_VERIFIED for s in ran):
        return "incomplete", EXIT_CHECKS_FAILED
    return PASSED, EXIT_OK


def _scenarios(results: dict[str, Any]) -> tuple[ScenarioResult, ...]:
    return tuple(
        ScenarioResult(
            feature=str(s.get("feature") or ""),
            scenario=str(s.get("scenario") or ""),
            outcome=str(s.get("outcome") or ERROR),
            message=str(s.get("message") or ""),
            tags=tuple(s.get("tags") or ()),
            example=dict(s.get("example") or {}),
            exit_code=s.get("exit_code"),
        )
        for s in results.get("scenarios", [])
    )


def run_verification(
    workspace: str | Path,
    env: str,
    source: str | Path,
    mapping: str | Path | None = None,
    report_dir: str | Path | None = None,
    *,
    extra_args: Sequence[str] = (),
    cutover_date: str | None = None,
    timeout: float | None = None,
) -> VerificationResult:
    """Run the validation suite against ``env`` and write the evidence pack (module docstring)."""
    from .evidence import build_pack

    workspace = Path(workspace).expanduser().absolute()
    profile = load_config(workspace).get(env)  # ConfigError (exit 2) for an unknown profile
    source_path = _a_file(source, "legacy extract")
    mapping_path = _a_file(mapping, "mapping file")
    folder = _prepare_report_dir(
        Path(report_dir).expanduser().absolute() if report_dir is not None else default_report_dir(workspace)
    )
    started = dt.datetime.now(dt.UTC)
    folders = _features_as_run(workspace, folder)
    cmd = pytest_command(workspace, env, source_path, mapping_path, folder, folders, extra_args, cutover_date)
    log = folder / LOG_FILE
    with open(log, "w", encoding="utf-8") as out:
        try:
            proc = subprocess.run(
                cmd,
                cwd=folder,
                env=_child_environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise VerificationCrashed(
                f"the validation suite did not finish within {timeout:g} s", where=str(log)
            ) from None
    results_path = folder / RESULTS_FILE
    if not results_path.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise VerificationCrashed(
            f"the validation suite did not run (pytest exit status {proc.returncode}); its output ends: {tail}",
            where=str(log),
        )
    results = json.loads(results_path.read_text(encoding="utf-8"))
    scenarios = _scenarios(results)
    verdict, code = verdict_of(scenarios)
    if proc.returncode not in (0, 1) and code in (EXIT_OK, EXIT_CHECKS_FAILED):
        # pytest itself was interrupted or failed after some scenarios ran: nothing to trust
        verdict, code = ERROR, EXIT_INTERNAL if proc.returncode != 2 else EXIT_ENVIRONMENT
    result = VerificationResult(folder, verdict, code, scenarios, proc.returncode)
    run_info = {
        "tool": "cutover",
        "tool_version": __version__,
        "python": sys.version.split()[0],
        "started_utc": started.isoformat().replace("+00:00", "Z"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "workspace": str(workspace),
        "environment": env,
        "profile": {"name": profile.name, **profile.to_table()},
        "pinned_organization_id": profile.pinned_org_id,
        "source": str(source_path),
        "mapping": str(mapping_path) if mapping_path else None,
        "extra_args": list(extra_args),
        "command": [Path(cmd[0]).name, *cmd[1:]],
        "pytest_exit_status": proc.returncode,
        "verdict": verdict,
        "exit_code": code,
    }
    build_pack(folder, results, run_info)
    return result
