"""How a verification's outcomes read on screen: a symbol and a word each (never colour alone).

Presentation only: the outcomes, the verdict and the figures are the verification's
(:mod:`cutover.report_reader`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.text import Text

#: outcome -> (symbol, style token); the symbols differ by shape, so NO_COLOR still tells them apart.
OUTCOME_MARKS: dict[str, tuple[str, str]] = {
    "passed": ("✓", "$success"),
    "failed": ("✗", "bold $error"),
    "not verified": ("?", "bold $warning"),
    "error": ("!", "bold $error"),
    "skipped": ("-", ""),
}
VERDICT_MARKS: dict[str, str] = {"passed": "✓", "failed": "✗", "incomplete": "?", "error": "!"}

#: The outcome filters, in the order the filter key cycles through them.
FILTERS: dict[str, tuple[str, ...]] = {
    "all": (),
    "failed": ("failed", "error"),
    "not verified": ("not verified",),
    "passed": ("passed",),
}
#: Outcomes, worst first (the "worst first" sort).
WORST_FIRST = ("error", "failed", "not verified", "skipped", "passed")
SORTS = ("run order", "worst first", "by name")


def theme_style(app: Any, token: str) -> str:
    """A style token with ``$variables`` of the app's theme resolved (Rich styles know none)."""
    variables = app.theme_variables if app is not None else {}
    parts = []
    for word in token.split():
        if word.startswith("$"):
            colour = variables.get(word[1:])
            if colour:
                parts.append(colour)
        else:
            parts.append(word)
    return " ".join(parts)


def outcome_text(app: Any, outcome: str) -> Text:
    symbol, style = OUTCOME_MARKS.get(outcome, ("?", ""))
    return Text(f"{symbol} {outcome}", style=theme_style(app, style))


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no scenario"


def figure_value(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def figures_line(figures: Mapping[str, Any]) -> str:
    return "  ·  ".join(f"{k} {figure_value(v)}" for k, v in figures.items())


def select(scenarios, outcome_filter: str, sort: str) -> list:
    """The scenarios the list shows: those of the filter, in the chosen order."""
    wanted = FILTERS.get(outcome_filter, ())
    shown = [s for s in scenarios if not wanted or s.outcome in wanted]
    if sort == "worst first":
        rank = {o: i for i, o in enumerate(WORST_FIRST)}
        shown.sort(key=lambda s: (rank.get(s.outcome, 0), s.index))
    elif sort == "by name":
        shown.sort(key=lambda s: (s.title.casefold(), s.index))
    return shown
