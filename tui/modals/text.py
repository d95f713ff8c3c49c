"""A long text to read and copy: the investigation of a failed step, the whole journal."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from .base import Modal


class TextModal(Modal[None]):
    BINDINGS = [Binding("c", "copy", "Copy", id="text.copy")]

    def __init__(self, title: str, text: str, *, copy_text: str | None = None, purpose: str | None = None):
        super().__init__(classes=purpose or "")
        self.purpose = purpose
        self.title_text = title
        self.text = text
        self.copy_text = copy_text if copy_text is not None else text

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body wide tall") as body:
            body.border_title = self.title_text
            with VerticalScroll(classes="modal-scroll", id="text-scroll"):
                yield Static(self.text, markup=False, id="text-body")
            with Horizontal(classes="modal-buttons"):
                yield Button("Close", id="close", variant="primary", compact=True)
                yield Button("Copy (c)", id="copy", compact=True)

    def on_mount(self) -> None:
        self.query_one("#text-scroll").focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.copy_text)
        self.notify("copied (OSC 52)")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.action_copy()
