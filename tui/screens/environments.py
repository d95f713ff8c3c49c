"""The environment picker: the workspace's profiles, and how to add one when there is none."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from cutover.config import Profile


def _where(profile: Profile) -> str:
    if profile.sim_db:
        return f"simulator {profile.sim_db}"
    return profile.dataverse_url or ""


class EnvironmentScreen(Screen):
    BINDINGS = [Binding("enter", "open", "Open", id="env.open", show=False)]

    def __init__(self, profiles: dict[str, Profile], workspace: str):
        super().__init__(classes="environments")
        self.profiles = profiles
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        with Vertical(id="env-body"):
            yield Static(f"cutover · environments in {self.workspace}", id="title", markup=False)
            if self.profiles:
                yield OptionList(
                    *(
                        Option(
                            f"{name:<16} {p.kind.upper() if p.kind == 'production' else p.kind:<11} {_where(p)}",
                            id=name,
                        )
                        for name, p in self.profiles.items()
                    ),
                    id="env-list",
                )
                yield Static("Enter opens the environment's run; ctrl+q quits.", id="status", markup=False)
            else:
                yield Static(
                    "No environment profiles in this workspace yet.\n\n"
                    "  cutover demo                          a rehearsal world to practise on\n"
                    "  cutover env add NAME --kind …         a real environment (see cutover env add --help)",
                    id="env-empty",
                    markup=False,
                )
        yield Footer()

    @on(OptionList.OptionSelected, "#env-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.app.open_environment(event.option.id)
