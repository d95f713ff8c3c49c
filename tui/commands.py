"""The command palette (ctrl+p) offers every action in force on the current screen.

Built from the same bindings as the footer and the help screen, so an action is never
reachable by key only: an operator whose terminal swallows a key still finds it by name.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .screens.help import binding_rows


class ActionCommands(Provider):
    def _commands(self):
        screen = self.screen
        for row in binding_rows(screen):
            if row.action in ("command_palette",):
                continue
            title = row.description.split(" — ")[0]
            help_text = f"{row.keys}  ·  {row.binding_id or row.action}"
            yield title, partial(self.app.run_action, row.action, row.node), help_text

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(f"{title} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
