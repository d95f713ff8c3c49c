"""The simulator's import graph: it stands in for Microsoft's services and shares no code with
cutover's clients (only :mod:`cutover.errors`, the exit-code root, may be imported from outside
``cutover.sim``), it has no import circle, and the runtime does not import the world generator.

Read from the source (``ast``), every ``import`` statement, including those under
``if TYPE_CHECKING:`` and inside functions: a circle that only type checkers see is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cutover.sim

SIM_DIR = Path(cutover.sim.__file__).parent
ALLOWED_OUTSIDE = {"cutover.errors"}


def _module_name(path: Path) -> str:
    return "cutover.sim" if path.name == "__init__.py" else f"cutover.sim.{path.stem}"


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``from . import x`` counts as ``cutover.sim.x``
    when ``x`` is a module of the package)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            for alias in node.names:  # `from . import auth` imports the module cutover.sim.auth
                candidate = f"{base}.{alias.name}"
                if (SIM_DIR / f"{alias.name}.py").exists() and base == "cutover.sim":
                    names.add(candidate)
    return names


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(SIM_DIR.glob("*.py"))}


def test_the_graph_sees_every_module():
    graph = _graph()
    assert {"cutover.sim.app", "cutover.sim.gateway", "cutover.sim.admin", "cutover.sim.__main__"} <= set(graph)
    assert "cutover.sim.dataverse_service" in graph["cutover.sim.simulator"]
    assert "cutover.sim.errors" in graph["cutover.sim.auth"]


def test_no_sim_module_imports_client_code():
    """Only cutover.errors from outside cutover.sim; never cutover.transport, dataverse, fno, auth, config, session, odata…"""
    offenders = {
        module: sorted(
            n
            for n in names
            if (n == "cutover" or n.startswith("cutover."))
            and not n.startswith("cutover.sim")
            and n not in ALLOWED_OUTSIDE
        )
        for module, names in _graph().items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_the_simulator_does_not_use_click():
    """click is the CLI's (cutover/cli.py) alone; `python -m cutover.sim` parses with argparse."""
    users = {m for m, names in _graph().items() if any(n == "click" or n.startswith("click.") for n in names)}
    assert users == set()


def test_runtime_dual_write_does_not_import_the_generator():
    """Reference data lives in sim/reference.py, which the generator and dual-write share."""
    graph = _graph()
    assert "cutover.sim.seed" not in graph["cutover.sim.dualwrite"]
    assert (
        "cutover.sim.reference" in graph["cutover.sim.dualwrite"]
        and "cutover.sim.reference" in graph["cutover.sim.seed"]
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    internal = {m: sorted(n for n in names if n in graph and n != m) for m, names in graph.items()}
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in internal[m]:
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(internal):
        if m not in state:
            visit(m)
    return cycles


def test_the_simulator_has_no_import_cycle():
    # cutover.sim (the package __init__) is imported by every submodule implicitly; it imports nothing.
    graph = {m: names for m, names in _graph().items() if m != "cutover.sim"}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
