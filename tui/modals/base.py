"""What every modal shares: a framed body, Escape answers "no", and a line for a hint."""

from __future__ import annotations

from typing import Generic, TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen

T = TypeVar("T")


class Modal(ModalScreen[T], Generic[T]):
    """A modal whose Escape dismisses it with :attr:`ESCAPE_RESULT` (the safe answer)."""

    ESCAPE_RESULT: object = None
    BINDINGS = [Binding("escape", "escape", "Cancel", id="modal.cancel")]

    def action_escape(self) -> None:
        self.dismiss(self.ESCAPE_RESULT)  # type: ignore[arg-type]
