"""The operator's part of a run: attest manual steps, confirm what must be confirmed.

The engine asks through this interface; the CLI (prompts on the terminal), the TUI (modal
screens) and a rehearsal (answers on its own, and performs manual steps in the simulator)
each implement it. An answer of ``None`` / ``False`` stops the run at that step without
failing it: it resumes there next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .model import Evidence, Step


@dataclass(frozen=True)
class Attestation:
    name: str  # who attests (recorded in the journal)
    statement: str  # what they typed or confirmed


class Operator(Protocol):
    async def attest(self, step: Step, evidence: Evidence | None) -> Attestation | None:
        """The operator did the manual step (or confirms the fact); ``None``: not now."""

    async def confirm_production(self, step: Step, environment: str) -> bool:
        """Typed the production environment's name again before a writing step."""

    async def confirm_point_of_no_return(self, step: Step) -> bool:
        """Confirmed once more before the step that cannot be undone."""

    async def acknowledge_not_verified(self, step: Step, evidence: Evidence) -> str | None:
        """On production: the name of who accepts that this evidence cannot be read."""
