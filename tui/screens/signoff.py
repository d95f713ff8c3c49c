"""The sign-off of an evidence pack: whether it is accepted, its signatures, its problems.

What it shows is :func:`cutover.signoff.check` of the pack: accepted or not, the verification's
verdict, every signature (name, role, when, the manifest it was bound to), and the problems —
each changed, added or removed file named, a signature for another manifest — and what is
still missing. ``g`` signs (name and role in a modal; :func:`cutover.signoff.sign` in a worker,
so the four-eyes rule and the tamper check are the core's, and a refusal reaches the app's error
modal); ``u`` checks again; ``v`` shows the results of the same pack; Escape goes back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cutover.signoff import PackCheck, check, sign

from ..modals.sign import Signer, SignModal
from ..widgets.outcomes import VERDICT_MARKS, theme_style
from .results import BACK, RESULTS, ResultsScreen, _beneath, shown_path


class SignoffScreen(Screen):
    BINDINGS = [
        Binding("g", "sign", "Sign", id="signoff.sign", tooltip="Sign the pack with your name and role"),
        Binding("u", "recheck", "Check again", id="signoff.check", tooltip="Hash every file of the pack again"),
        RESULTS,
        BACK,
    ]

    def __init__(self, report_dir: Path, env: str):
        super().__init__(classes="signoff")
        self.report_dir = Path(report_dir)
        self.env = env
        self.pack: PackCheck | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"cutover · {self.env} · sign-off", id="title", markup=False)
        yield Static("Checking the evidence pack…", id="pack-state")
        table: DataTable = DataTable(id="signatures", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="pack-problems", markup=False)
        yield Static("", id="status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#signatures", DataTable)
        table.border_title = "Signatures"
        table.add_column("name", key="name")
        table.add_column("role", key="role")
        table.add_column("signed (UTC)", key="signed")
        table.add_column("manifest", key="manifest")
        table.focus()
        self.query_one("#status", Static).update(f"pack {shown_path(self, self.report_dir)} · g signs · u checks again")
        self.action_recheck()

    @property
    def busy(self) -> bool:
        return any(w.group == "signoff" and w.is_running for w in self.app.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sign", "recheck") and self.busy:
            return None
        return True

    # --- the check -------------------------------------------------------------------------------

    def action_recheck(self) -> None:
        self.app.start_work(self._check(), name="signoff-check", group="signoff", description="check the pack")

    async def _check(self) -> None:
        self.pack = await asyncio.to_thread(check, self.report_dir)
        self._show()

    def _show(self) -> None:
        pack = self.pack
        if pack is None or self not in self.app.screen_stack:  # the operator left meanwhile
            return
        state = Text()
        if pack.accepted:
            state.append("✓ ACCEPTED", style=theme_style(self.app, "bold $success"))
            state.append(": intact and signed by two different people")
        else:
            state.append("✗ NOT ACCEPTED", style=theme_style(self.app, "bold $error"))
        if pack.verdict:
            mark = VERDICT_MARKS.get(pack.verdict, "?")
            state.append(f"\nverification verdict: {mark} {pack.verdict}")
            if pack.verdict != "passed":
                state.append(" (a signature accepts it as it is: read the results first, v)")
        if pack.manifest_sha256:
            state.append(f"\nmanifest SHA-256 {pack.manifest_sha256}", style="dim")
        self.query_one("#pack-state", Static).update(state)
        table = self.query_one("#signatures", DataTable)
        table.clear()
        for s in pack.signatures:
            valid = s.manifest_sha256 == pack.manifest_sha256
            manifest = s.manifest_sha256[:12] + "…" + ("" if valid else " ✗ another manifest")
            table.add_row(s.name, s.role, s.signed_utc, manifest)
        table.border_subtitle = f"{len(pack.signatures)} signature(s)"
        lines = [f"✗ {p}" for p in pack.problems] + [f"○ missing: {m}" for m in pack.missing]
        self.query_one("#pack-problems", Static).update("\n".join(lines) or "No problem: every file is as signed.")
        self.refresh_bindings()

    # --- signing --------------------------------------------------------------------------------

    def action_sign(self) -> None:
        if self.busy:
            return

        def answered(signer: Signer | None) -> None:
            if signer is not None:
                self.app.start_work(
                    self._sign(signer), name="signoff-sign", group="signoff", description="sign the pack"
                )

        self.app.push_screen(SignModal(shown_path(self, self.report_dir)), answered)

    async def _sign(self, signer: Signer) -> None:
        try:
            signature = await asyncio.to_thread(sign, self.report_dir, signer.name, signer.role)
            self.notify(f"signed by {signature.name} ({signature.role})")
        finally:
            self.pack = await asyncio.to_thread(check, self.report_dir)
            self._show()

    # --- moving -----------------------------------------------------------------------------------

    def action_results(self) -> None:
        below = _beneath(self)
        if isinstance(below, ResultsScreen) and below.report_dir == self.report_dir:
            self.app.pop_screen()
        else:
            self.app.push_screen(ResultsScreen(self.report_dir, self.env))

    def action_back(self) -> None:
        if _beneath(self) is not None:
            self.app.pop_screen()
