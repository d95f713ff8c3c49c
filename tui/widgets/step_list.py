"""The runbook as a list: one line per step with its state, gates and the point of no return.

``›`` marks the current step (the running one, else the first unfinished); the highlight is
what the detail shows. Lines carry symbols as well as colours (NO_COLOR, monochrome terminals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from .present import GATE_MARK, POINT_OF_NO_RETURN_MARK, STATES


class StepList(OptionList):
    """Options are the step ids; :meth:`show` redraws them keeping the highlight."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._step_lines: list[tuple] = []

    def _style(self, token: str) -> str:
        if not token:
            return ""
        variables = self.app.theme_variables if self.is_mounted else {}
        parts = []
        for word in token.split():
            if word.startswith("$"):
                colour = variables.get(word[1:])
                if colour:
                    parts.append(colour)
            else:
                parts.append(word)
        return " ".join(parts)

    def show(self, steps: Sequence, states: Mapping[str, str], current: str | None) -> None:
        lines = [(s.id, states.get(s.id, "pending"), s.id == current, s.gate is not None, s.point_of_no_return) for s in steps]  # fmt: skip
        if lines == self._step_lines:
            return
        highlighted = self.highlighted
        self._step_lines = lines
        options = []
        for step_id, state, is_current, gated, no_return in lines:
            symbol, style = STATES.get(state, ("?", ""))
            text = Text()
            text.append("› " if is_current else "  ", style="bold")
            text.append(f"{symbol} ", style=self._style(style))
            text.append(step_id, style="bold" if is_current else "")
            marks = (f" {GATE_MARK}" if gated else "") + (f" {POINT_OF_NO_RETURN_MARK}" if no_return else "")
            if marks:
                text.append(marks, style=self._style("$warning"))
            options.append(Option(text, id=step_id))
        self.clear_options()
        self.add_options(options)
        if highlighted is not None and highlighted < len(options):
            self.highlighted = highlighted

    def select_step(self, step_id: str) -> None:
        for index, line in enumerate(self._step_lines):
            if line[0] == step_id:
                self.highlighted = index
                return

    @property
    def highlighted_step(self) -> str | None:
        if self.highlighted is None or self.highlighted >= len(self._step_lines):
            return None
        return self._step_lines[self.highlighted][0]
