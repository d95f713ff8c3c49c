"""A yes/no question (the point of no return, quitting while a step runs): ``ModalScreen[bool]``."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from .base import Modal


class ConfirmModal(Modal[bool]):
    """``True`` only for an explicit "yes"; Escape, "no" and a dangerous default answer ``False``.

    With ``danger`` the "no" button has the focus, so an Enter typed out of habit stops."""

    ESCAPE_RESULT = False

    def __init__(
        self,
        title: str,
        message: str,
        *,
        confirm: str = "Yes",
        cancel: str = "No",
        danger: bool = False,
        purpose: str | None = None,
    ):
        super().__init__(classes=("danger " if danger else "") + (purpose or ""))
        self.purpose = purpose
        self.title_text = title
        self.message = message
        self.confirm_label = confirm
        self.cancel_label = cancel
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body") as body:
            body.border_title = self.title_text
            yield Static(self.message, markup=False, classes="modal-message")
            with Horizontal(classes="modal-buttons"):
                yield Button(
                    self.confirm_label, id="confirm", variant="error" if self.danger else "primary", compact=True
                )
                yield Button(self.cancel_label, id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel" if self.danger else "#confirm", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(False)
