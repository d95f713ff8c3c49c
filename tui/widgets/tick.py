"""A checkbox whose state reads without colour: ``[X]`` ticked, ``[ ]`` not (NO_COLOR, monochrome)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class Tick(Checkbox):
    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button
