"""The help screen, generated from the bindings in force (so a remapped key shows as remapped).

Every action of the screen below is listed with its key(s), its id (for the ``[keys]`` table of
``cutover.toml``) and what it does; the same actions are in the command palette (ctrl+p).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Static

from ..modals.base import Modal


@dataclass(frozen=True)
class BindingRow:
    keys: str
    description: str
    binding_id: str
    action: str
    node: object


def binding_rows(screen: Screen) -> list[BindingRow]:
    """One row per action in force on ``screen`` (keys of the same action joined)."""
    app = screen.app
    rows: dict[tuple[int, str], BindingRow] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description and not binding.tooltip:
            continue
        index = (id(active.node), binding.action)
        display = app.get_key_display(binding)
        known = rows.get(index)
        if known is not None:
            if display not in known.keys.split(", "):
                rows[index] = BindingRow(f"{known.keys}, {display}", known.description, known.binding_id, known.action, known.node)  # fmt: skip
            continue
        description = binding.description + (f" — {binding.tooltip}" if binding.tooltip else "")
        rows[index] = BindingRow(display, description, binding.id or "", binding.action, active.node)
    ordered = list(rows.values())
    return [r for r in ordered if r.binding_id] + [r for r in ordered if not r.binding_id]


class HelpScreen(Modal[None]):
    def __init__(self, rows: list[BindingRow]):
        super().__init__(classes="help")
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body wide") as body:
            body.border_title = "Keys"
            table: DataTable = DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "id", "action")
            for row in self.rows:
                table.add_row(row.keys, row.binding_id, row.description)
            yield table
            yield Static(
                "Every action is also in the command palette (ctrl+p). Remap keys in cutover.toml:\n"
                '[keys]\n"run.continue" = "f5"',
                markup=False,
                classes="modal-note",
            )
            yield Button("Close", id="close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
