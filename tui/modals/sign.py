"""Signing an evidence pack: the signer's name and role (``ModalScreen[Signer | None]``).

The modal only asks; :func:`cutover.signoff.sign` decides (an intact pack, four eyes) and its
refusal comes back through the app's error modal. Nothing is prefilled: the second signature
must be typed by the second person.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from .base import Modal


@dataclass(frozen=True)
class Signer:
    name: str
    role: str


class SignModal(Modal[Signer | None]):
    ESCAPE_RESULT = None

    def __init__(self, report: str):
        super().__init__(classes="sign")
        self.report = report

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body") as body:
            body.border_title = "Sign the evidence pack"
            yield Static(
                f"{self.report}\n\nYour signature attests that you read this pack (report.html) and accept it. "
                "It is bound to the SHA-256 of the pack's manifest; a second signature must come from someone else.",
                markup=False,
                classes="modal-message",
            )
            yield Input(placeholder="your name", id="sign-name")
            yield Input(placeholder="your role, e.g. Finance controller", id="sign-role")
            yield Static("", id="sign-problem", classes="modal-problem", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Sign", id="confirm", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#sign-name", Input).focus()

    def _submit(self) -> None:
        name = self.query_one("#sign-name", Input).value
        role = self.query_one("#sign-role", Input).value
        if not name.strip():
            self.query_one("#sign-problem", Static).update("type your name")
            self.query_one("#sign-name", Input).focus()
            return
        if not role.strip():
            self.query_one("#sign-problem", Static).update("type your role")
            self.query_one("#sign-role", Input).focus()
            return
        self.dismiss(Signer(name, role))

    @on(Input.Submitted, "#sign-name")
    def _name_entered(self) -> None:
        self.query_one("#sign-role", Input).focus()

    @on(Input.Submitted, "#sign-role")
    def _role_entered(self) -> None:
        self._submit()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(None)
