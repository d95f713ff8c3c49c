"""The one registration point of the validation suite: ``pytest -p cutover.checks.plugin``.

What it adds to pytest (and pytest-bdd):

- **Options** ``--cutover-workspace DIR --cutover-env NAME --cutover-source FILE``
  ``[--cutover-mapping FILE] [--cutover-report DIR] [--cutover-cutover-date YYYY-MM-DD]``
  ``[--cutover-features DIR …]`` — what to verify, where to write results, and the folders
  of feature files (each may hold a ``scope.toml``; later folders override earlier ones).
  :mod:`cutover.checks.suite` binds every scenario of those folders.
- **Fixtures** (session): ``cutover_settings``, ``scope`` (:mod:`.scope`), ``cutover``
  (:class:`.data.CutoverData`: every read, once, through read-only clients); (per scenario):
  ``evidence`` (:class:`.recorder.Recorder`).
- **Steps**: :mod:`.steps.milestones`, :mod:`.steps.balances`, :mod:`.steps.maps`
  (``pytest_plugins`` below).
- **Markers** for the feature tags: ``milestones``, ``ar``, ``gl``, ``balances``, ``maps``
  (``-m "ar and not maps"``).
- **Outcomes**: a step that raises :class:`.outcomes.NotVerified` leaves the scenario
  *not verified* — shown as ``N`` / ``NOT VERIFIED`` and counted apart in the summary, its
  message prefixed ``NOT VERIFIED:`` in JUnit and Cucumber JSON. It stays a failure for
  pytest (exit status 1), so no reader can take it for a pass. A :class:`.outcomes.Finding`
  is reported with its message only (it names the rows), not a traceback.
- **results.json** in ``--cutover-report``: per scenario its feature, tags, example, steps,
  outcome (passed, failed, not verified, error with the exit code its error means), message,
  figures and tables (each table also as CSV under ``tables/``). :mod:`cutover.evidence`
  turns it into ``report.html``; :func:`cutover.verification.run_verification` decides the
  verdict and exit code from it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from cutover import __version__
from cutover.errors import CutoverError, exit_code_of

from .data import CutoverData, Environment, Settings
from .outcomes import ERROR, FAILED, NOT_VERIFIED, NOT_VERIFIED_PREFIX, PASSED, SKIPPED, Finding, NotVerified
from .recorder import Recorder, plain
from .scope import SCOPE_FILE, load_scope

pytest_plugins = (
    "cutover.checks.steps.milestones",
    "cutover.checks.steps.balances",
    "cutover.checks.steps.maps",
)

RESULTS_FILE = "results.json"
TABLES_DIR = "tables"
MARKERS = {
    "milestones": "the migrated milestones (Dataverse, Finance and Operations, invoices)",
    "balances": "Accounts receivable and General ledger balances",
    "ar": "Accounts receivable",
    "gl": "General ledger",
    "maps": "the dual-write maps",
}

_RECORD = pytest.StashKey[dict]()
_RECORDER = pytest.StashKey[Recorder]()
_STATE = pytest.StashKey[dict]()

#: The settings of the current run (set in pytest_configure): cutover.checks.suite reads the
#: feature folders from here when pytest imports it.
CURRENT: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover", "cutover validation suite")
    group.addoption("--cutover-workspace", default=None, help="the workspace of the cutover")
    group.addoption("--cutover-env", default=None, help="the environment profile to verify")
    group.addoption("--cutover-source", default=None, help="the legacy extract the cutover ran with")
    group.addoption("--cutover-mapping", default=None, help="the extract's mapping file")
    group.addoption("--cutover-report", default=None, help="folder for results.json and tables/")
    group.addoption("--cutover-cutover-date", default=None, help="the cutover date (default: the journal's)")
    group.addoption("--cutover-features", action="append", default=[], help="a folder of feature files (repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    folders = [Path(p) for p in config.getoption("cutover_features") or []]
    CURRENT.clear()
    CURRENT["features"] = folders
    config.stash[_STATE] = {"records": [], "started": time.time(), "environment": None}


def feature_folders() -> list[Path]:
    """The feature folders of the current run (``--cutover-features``), else the shipped ones."""
    folders = CURRENT.get("features") or []
    if folders:
        return list(folders)
    from . import feature_root

    with feature_root() as root:
        return [root]


# --- fixtures -------------------------------------------------------------------------------------


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().absolute() if value else None


@pytest.fixture(scope="session")
def cutover_settings(pytestconfig: pytest.Config) -> Settings:
    get = pytestconfig.getoption
    missing = [o for o in ("workspace", "env", "source") if not get(f"cutover_{o}")]
    if missing:
        raise CutoverError(
            "the validation suite needs " + ", ".join(f"--cutover-{m}" for m in missing),
            fix="run it with `cutover verify`",
        )
    return Settings(
        workspace=_path(get("cutover_workspace")),
        env=get("cutover_env"),
        source=_path(get("cutover_source")),
        mapping=_path(get("cutover_mapping")),
        report=_path(get("cutover_report")),
        cutover_date=get("cutover_cutover_date"),
    )


@pytest.fixture(scope="session")
def scope(pytestconfig: pytest.Config):
    return load_scope(folder / SCOPE_FILE for folder in feature_folders())


@pytest.fixture(scope="session")
def cutover(cutover_settings: Settings, pytestconfig: pytest.Config):
    environment = Environment(cutover_settings)
    data = CutoverData(cutover_settings, environment)
    pytestconfig.stash[_STATE]["data"] = data
    try:
        yield data
    finally:
        pytestconfig.stash[_STATE]["environment"] = {
            "opened": environment.opened,
            "organization_id": environment.organization_id,
            "pinned_organization_id": environment.profile.pinned_org_id,
            "profile": environment.profile.name,
            "kind": environment.profile.kind,
        }
        environment.close()


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Recorder:
    recorder = request.node.stash.setdefault(_RECORDER, Recorder())
    return recorder


# --- what each scenario did -------------------------------------------------------------------------


def pytest_bdd_before_scenario(request, feature, scenario) -> None:
    try:
        example = dict(request.getfixturevalue("_pytest_bdd_example"))
    except pytest.FixtureLookupError:
        example = {}
    request.node.stash[_RECORD] = {
        "feature": feature.name,
        "feature_file": feature.rel_filename,
        "feature_description": feature.description,
        "scenario": scenario.name,
        "line": scenario.line_number,
        "tags": sorted(set(scenario.tags) | set(feature.tags)),
        "example": example,
        "steps": [{"keyword": s.keyword, "text": s.name, "status": "not run"} for s in scenario.steps],
    }


def _step_status(request, step, status: str) -> None:
    record = request.node.stash.get(_RECORD, None)
    if record is None:
        return
    for entry in record["steps"]:
        if entry["text"] == step.name and entry["status"] == "not run":
            entry["status"] = status
            return


def pytest_bdd_after_step(request, feature, scenario, step, step_func, step_func_args) -> None:
    _step_status(request, step, PASSED)


def pytest_bdd_step_error(request, feature, scenario, step, step_func, step_func_args, exception) -> None:
    _step_status(request, step, NOT_VERIFIED if isinstance(exception, NotVerified) else FAILED)


def _classify(exc: BaseException, when: str) -> tuple[str, int | None, str]:
    """(outcome, exit code of an error, one-line message)."""
    from cutover.errors import ChecksFailed

    if isinstance(exc, NotVerified):
        return NOT_VERIFIED, None, str(exc)
    if isinstance(exc, (Finding, ChecksFailed)):
        return FAILED, None, str(exc)
    if isinstance(exc, AssertionError) and when == "call":
        return FAILED, None, str(exc) or "a check failed"
    if exc.__class__.__name__ in ("StepDefinitionNotFoundError", "StepImplementationError"):
        return ERROR, 2, f"{exc} (a step the step library does not know: check the wording)"
    code = exit_code_of(exc)
    text = str(exc) if isinstance(exc, CutoverError) else f"{type(exc).__name__}: {exc}"
    return ERROR, code, text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    record = item.stash.setdefault(_RECORD, {"scenario": item.name, "tags": [], "steps": []})
    record.setdefault("nodeid", item.nodeid)
    record.setdefault("duration", 0.0)
    record["duration"] += report.duration
    if call.excinfo is None:
        if call.when == "call" and "outcome" not in record:
            record["outcome"] = PASSED
        return
    if call.excinfo.errisinstance(pytest.skip.Exception):
        record["outcome"], record["message"] = SKIPPED, str(call.excinfo.value)
        return
    exc = call.excinfo.value
    kind, code, message = _classify(exc, call.when)
    if kind == NOT_VERIFIED:
        report.longrepr = NOT_VERIFIED_PREFIX + message
        report.user_properties.append(("cutover_outcome", NOT_VERIFIED))
    elif kind == FAILED and isinstance(exc, Finding):
        report.longrepr = message
    if record.get("outcome") in (None, PASSED):
        record["outcome"], record["message"] = kind, message
        if code is not None:
            record["exit_code"] = code
            record["error_type"] = type(exc).__name__


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if report.when == "call" and ("cutover_outcome", NOT_VERIFIED) in report.user_properties:
        return "not verified", "N", ("NOT VERIFIED", {"yellow": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is None:
        return
    record = item.stash.get(_RECORD, None)
    if record is None:
        return
    recorder = item.stash.get(_RECORDER, None)
    record["figures"] = dict(recorder.figures) if recorder else {}
    record["_tables"] = list(recorder.tables) if recorder else []
    if record not in state["records"]:
        state["records"].append(record)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "scenario"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    report_dir = config.getoption("cutover_report")
    state = config.stash.get(_STATE, None)
    if not report_dir or state is None:
        return
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    scenarios = []
    for index, record in enumerate(state["records"], start=1):
        record = dict(record)
        record.setdefault("outcome", ERROR)
        tables = []
        for table in record.pop("_tables", []):
            name = f"{TABLES_DIR}/{index:02d}-{_slug(record.get('scenario', ''))}/{table.name}.csv"
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            table.frame.write_csv(path)
            tables.append({"name": table.name, "title": table.title, "csv": name, **table.preview()})
        record["tables"] = tables
        record["index"] = index
        scenarios.append(plain(record))
    data: CutoverData | None = state.get("data")
    scope_data = None
    try:
        scope_data = load_scope(f / SCOPE_FILE for f in feature_folders()).as_data()
    except CutoverError as exc:
        scope_data = {"error": str(exc)}
    out = {
        "format": "cutover-results/1",
        "tool_version": __version__,
        "pytest_exit_status": int(exitstatus),
        "duration_s": round(time.time() - state["started"], 3),
        "environment": state.get("environment"),
        "cutover_date": data.cutover_date if data is not None and "cutover_date" in data.__dict__ else None,
        "scope": scope_data,
        "scenarios": scenarios,
    }
    (folder / RESULTS_FILE).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if not state or not state["records"]:
        return
    counts: dict[str, int] = {}
    for record in state["records"]:
        counts[record.get("outcome", ERROR)] = counts.get(record.get("outcome", ERROR), 0) + 1
    order = (PASSED, FAILED, NOT_VERIFIED, ERROR, SKIPPED)
    line = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    for record in state["records"]:
        if record.get("outcome") in (NOT_VERIFIED, FAILED, ERROR):
            label = record["outcome"].upper()
            terminalreporter.write_line(f"{label}: {record.get('scenario')}: {str(record.get('message', ''))[:500]}")
    terminalreporter.write_sep("=", f"cutover scenarios: {line}")
