"""The direction of imports: the core never imports a user interface or a test framework
(only the command line, `cutover.cli`, uses click),
and the simulator shares no code with the clients (a bug shared by both would hide itself).

Reads the import statements of every module (no module is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "src" / "cutover"
SIM = CORE / "sim"

UI_AND_TEST_PACKAGES = ("textual", "click", "pytest", "pytest_bdd", "cutover.tui", "cutover.checks")
# What the simulator may use from outside cutover.sim: the error root (no client code in it).
SIM_MAY_IMPORT = ("cutover.errors",)


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    if package is None:
        package = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _core_files():
    """Every core module but the command line (the `cutover.cli` package, a face like tui/)."""
    return sorted(p for p in CORE.rglob("*.py") if CORE / "cli" not in p.parents)


def test_the_core_imports_no_user_interface_and_no_test_framework():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if _under(n, UI_AND_TEST_PACKAGES))
        for path in _core_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_simulator_imports_no_client_code():
    offenders = {}
    for path in sorted(SIM.rglob("*.py")):
        bad = sorted(
            n for n in _imports(path) if _under(n, ("cutover",)) and not _under(n, ("cutover.sim", *SIM_MAY_IMPORT))
        )
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_clients_import_no_simulator_code():
    offenders = {}
    for path in _core_files():
        if SIM in path.parents:
            continue
        bad = sorted(n for n in _imports(path) if _under(n, ("cutover.sim",)))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_the_checker_sees_a_planted_violation(tmp_path):
    """The reader above resolves relative imports; a planted `from ..sim import x` is seen."""
    planted = tmp_path / "probe.py"
    planted.write_text(
        "from .sim import seed\nfrom ..cutover.transport import Transport\nimport click\n", encoding="utf-8"
    )
    names = _imports(planted, package="cutover")
    assert "cutover.sim.seed" in names and "click" in names
