"""cutover: migrate invoiced fixed-price billing milestones into Project Operations, and prove it.

Packaging: the repository keeps ``tui/``, ``checks/`` and ``features/`` as top-level folders, but
they belong to this package as ``cutover.tui``, ``cutover.checks`` and ``cutover.features``. A
wheel puts them inside ``cutover/`` (hatch ``force-include``). In a checkout (an editable install
or a plain ``PYTHONPATH=src``) the folders stay where they are, so this package's ``__path__``
also looks in the checkout's root for exactly those three — edits show without reinstalling.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

# Sub-packages that live at the top of the repository and install inside this package.
CHECKOUT_SUBPACKAGES = ("tui", "checks", "features")


def _checkout_root() -> Path | None:
    """The repository root when this package is imported from a checkout's ``src/``, else None."""
    here = Path(__file__).resolve().parent
    if here.parent.name != "src":
        return None
    root = here.parent.parent
    if not (root / "pyproject.toml").is_file():
        return None
    if not all((root / name / "__init__.py").is_file() for name in CHECKOUT_SUBPACKAGES):
        return None
    if any((here / name).exists() for name in CHECKOUT_SUBPACKAGES):
        return None  # installed copies are inside the package: use those
    return root


_root = _checkout_root()
if _root is not None:
    # Append, never prepend: everything under src/cutover wins over a same-named folder at the root.
    __path__.append(str(_root))
del _root
