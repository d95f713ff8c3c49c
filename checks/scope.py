"""``scope.toml``: what the validation suite compares and how far a figure may be off.

The shipped default lives beside the feature files (``cutover.features/scope.toml``); a
``scope.toml`` in ``<workspace>/features/`` overrides it key by key. Files are read in the
order given (shipped first); a later file's keys win. Amounts are exact text (``"0.00"``): a
TOML float is refused, as money is never a binary float. Unknown tables or keys are refused,
naming the file, so a typo cannot silently leave a tolerance at its default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cutover.errors import InputError
from cutover.reconcile import Tolerances

SCOPE_FILE = "scope.toml"

_KNOWN: dict[str, dict[str, type]] = {
    "scope": {"legal_entities": list, "milestones_on": str},
    "tolerances": {
        "milestone_amount": Decimal,
        "milestone_tax": Decimal,
        "milestone_date_days": int,
        "control_total": Decimal,
        "customer_balance": Decimal,
        "ledger_balance": Decimal,
    },
}


@dataclass(frozen=True)
class Scope:
    """The merged scope: legal entities (empty = the extract's), tolerances, and the files read."""

    legal_entities: tuple[str, ...] = ()
    milestones_on: str = "contract"
    milestone_amount: Decimal = Decimal("0")
    milestone_tax: Decimal = Decimal("0")
    milestone_date_days: int = 0
    control_total: Decimal = Decimal("0")
    customer_balance: Decimal = Decimal("0")
    ledger_balance: Decimal = Decimal("0")
    files: tuple[str, ...] = field(default=())

    def milestone_tolerances(self, **changes: Any) -> Tolerances:
        values = {
            "amount": self.milestone_amount,
            "tax": self.milestone_tax,
            "date": self.milestone_date_days,
            "total": self.control_total,
        }
        values.update({k: v for k, v in changes.items() if v is not None})
        return Tolerances(**values)

    def as_data(self) -> dict[str, Any]:
        return {
            "legal_entities": list(self.legal_entities),
            "milestones_on": self.milestones_on,
            "tolerances": {
                "milestone_amount": str(self.milestone_amount),
                "milestone_tax": str(self.milestone_tax),
                "milestone_date_days": self.milestone_date_days,
                "control_total": str(self.control_total),
                "customer_balance": str(self.customer_balance),
                "ledger_balance": str(self.ledger_balance),
            },
            "files": list(self.files),
        }


def amount(text: Any, where: str) -> Decimal:
    """An exact, non-negative amount from text or an integer (a float is refused)."""
    if isinstance(text, bool) or isinstance(text, float):
        raise InputError(f'{where}: {text!r} is a binary float; write amounts as text, e.g. "0.01"')
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InputError(f'{where}: {text!r} is not an amount; write it like "0.01"') from None
    if not value.is_finite() or value < 0:
        raise InputError(f"{where}: {text!r} must be an amount of at least 0")
    return value


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(
            f"{path}: not valid TOML ({exc})", fix='fix the syntax; amounts are text like "0.00"'
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None


def load_scope(paths: Iterable[Path]) -> Scope:
    """Merge the ``scope.toml`` files that exist among ``paths`` (later ones win)."""
    values: dict[str, Any] = {}
    read: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        read.append(str(path))
        data = _read(path)
        for table, entries in data.items():
            if table not in _KNOWN or not isinstance(entries, dict):
                raise InputError(f"{path}: unknown table [{table}] (known: {', '.join(f'[{t}]' for t in _KNOWN)})")
            for key, value in entries.items():
                kind = _KNOWN[table].get(key)
                where = f"{path}: [{table}] {key}"
                if kind is None:
                    raise InputError(f"{where} is not a known setting (known: {', '.join(_KNOWN[table])})")
                if kind is Decimal:
                    values[key] = amount(value, where)
                elif kind is int:
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise InputError(f"{where} must be a whole number of days of at least 0, not {value!r}")
                    values[key] = value
                elif kind is list:
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise InputError(f'{where} must be a list of legal entity codes, e.g. ["USMF"]')
                    values[key] = tuple(v.strip().upper() for v in value if v.strip())
                else:
                    if key == "milestones_on" and value not in ("contract", "line"):
                        raise InputError(f'{where} is "contract" or "line", not {value!r}')
                    values[key] = value
    return Scope(**values, files=tuple(read))
