"""Device code sign-in over SSH: the code and the URL, until the sign-in completes or is cancelled.

The core calls ``on_code(message, user_code, verification_uri)`` and then polls the identity
platform; this modal only shows what to type where. "Cancel sign-in" sets the ``cancel`` event
the core watches, so the sign-in stops within a second and the run ends with that error.
"""

from __future__ import annotations

import asyncio

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from .base import Modal


class DeviceCodeModal(Modal[None]):
    BINDINGS = [Binding("c", "copy", "Copy the code", id="signin.copy")]

    def __init__(self, message: str, user_code: str, verification_uri: str, cancel: asyncio.Event):
        super().__init__(classes="device-code")
        self.message = message
        self.user_code = user_code
        self.verification_uri = verification_uri
        self.cancel = cancel

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body") as body:
            body.border_title = "Sign in"
            yield Static(f"Open  {self.verification_uri}", markup=False, id="device-uri")
            yield Static(f"and enter the code  {self.user_code}", markup=False, id="device-code-text")
            yield Static(self.message, markup=False, classes="modal-note")
            yield Static("Waiting for the sign-in…", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Copy code (c)", id="copy", compact=True)
                yield Button("Cancel sign-in", id="cancel", variant="error", compact=True)

    def action_escape(self) -> None:
        self._cancel()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.user_code)
        self.notify("code copied (OSC 52)")

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.action_copy()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.cancel.set()
        self.dismiss(None)
