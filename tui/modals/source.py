"""The run's inputs when neither the journal nor the command line gives them: a file picker.

``ModalScreen[SourceChoice | None]``. The tree shows extracts (CSV, text, XLSX, Parquet) and
mapping files (TOML) under the folder it opens on; Enter on a file puts it into the extract
field (a ``.toml`` into the mapping field). Whether the file is a good extract is the core's
judgement (``preflight.source``), not this picker's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DirectoryTree, Input, Label, Static

from .base import Modal

EXTRACT_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".parquet"}
MAPPING_SUFFIXES = {".toml"}


@dataclass(frozen=True)
class SourceChoice:
    extract: Path
    mapping: Path | None
    cutover_date: str


class InputTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in EXTRACT_SUFFIXES | MAPPING_SUFFIXES)
        ]


class SourceModal(Modal[SourceChoice | None]):
    ESCAPE_RESULT = None

    def __init__(self, folder: Path, *, extract: Path | None = None, mapping: Path | None = None, cutover_date: str | None = None):  # fmt: skip
        super().__init__(classes="source")
        self.folder = folder
        self.extract = extract
        self.mapping = mapping
        self.cutover_date = cutover_date or dt.datetime.now(dt.UTC).date().isoformat()

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-body wide tall") as body:
            body.border_title = "The legacy extract for this run"
            yield InputTree(self.folder, id="source-tree")
            yield Label("Extract")
            yield Input(value=str(self.extract or ""), placeholder="path of the legacy extract", id="source-extract")
            yield Label("Mapping file (optional)")
            yield Input(value=str(self.mapping or ""), placeholder="path of the mapping TOML", id="source-mapping")
            yield Label("Cutover date (YYYY-MM-DD)")
            yield Input(value=self.cutover_date, id="source-date")
            yield Static("", id="source-problem", classes="modal-problem", markup=False)
            with Horizontal(classes="modal-buttons"):
                yield Button("Use these", id="confirm", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#source-extract" if self.extract else "#source-tree").focus()

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        target = "#source-mapping" if event.path.suffix.lower() in MAPPING_SUFFIXES else "#source-extract"
        self.query_one(target, Input).value = str(event.path)

    def _submit(self) -> None:
        problem = self.query_one("#source-problem", Static)
        extract = self.query_one("#source-extract", Input).value.strip()
        mapping = self.query_one("#source-mapping", Input).value.strip()
        date = self.query_one("#source-date", Input).value.strip()
        if not extract or not Path(extract).expanduser().is_file():
            problem.update("choose an existing extract file")
            return
        if mapping and not Path(mapping).expanduser().is_file():
            problem.update("the mapping file does not exist (leave it empty if there is none)")
            return
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            problem.update("the cutover date must read YYYY-MM-DD")
            return
        self.dismiss(SourceChoice(Path(extract).expanduser(), Path(mapping).expanduser() if mapping else None, date))

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._submit()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _no(self) -> None:
        self.dismiss(None)
