"""How the core's facts read on screen: state words and symbols, journal lines, figures.

Presentation only. The facts — a step's :class:`~cutover.engine.StepState`, the journal's
entries, the progress figures (the fields of ``cutover.events.Progress``) — come from the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: display state -> (symbol, style). Symbols differ by shape too, so NO_COLOR still tells them apart.
STATES: dict[str, tuple[str, str]] = {
    "pending": ("○", ""),
    "running": ("●", "bold $accent"),
    "done": ("✓", "$success"),
    "attested": ("✓", "$success"),
    "failed": ("✗", "bold $error"),
    "blocked": ("■", "bold $warning"),
    "interrupted": ("◐", "$warning"),
}
GATE_MARK = "◇"
POINT_OF_NO_RETURN_MARK = "◆"
LEGEND = f"✓ done ● running ✗ failed ■ blocked ◐ interrupted  {GATE_MARK} gated {POINT_OF_NO_RETURN_MARK} no return"


def display_state(state: Any, running: bool) -> str:
    """The word for a step, from the journal's StepState and whether it runs right now."""
    if running:
        return "running"
    if state.finished:
        return "attested" if state.attested_by else "done"
    if state.failed:
        return "blocked" if state.last_event == "step.blocked" else "failed"
    if state.started:
        return "interrupted"
    return "pending"


def entry_summary(kind: str, data: Mapping[str, Any]) -> str:
    """One line for a journal entry's data."""
    figures = data.get("figures") or {}
    if kind == "step.progress" and isinstance(figures, Mapping):
        if "phase" in figures:
            return progress_text(str(data.get("message") or ""), figures)
        if is_progress(figures):
            return figures_text(figures)
    for key in ("message", "summary", "reason", "statement", "title"):
        value = data.get(key)
        if value:
            text = str(value)
            if kind == "step.failed" and data.get("fix"):
                text += f" — fix: {data['fix']}"
            return text
    if kind == "run.finished":
        return "finished" if data.get("ok") else f"stopped at {data.get('stopped_at')}"
    if kind == "run.started" and data.get("resumed_at"):
        return f"resumed at {data['resumed_at']}"
    return ""


def progress_text(message: str, figures: Mapping[str, Any]) -> str:
    """What a progress event says: its message, or its phase and detail (an operation's
    ``PhaseStarted`` / ``PhaseFinished`` carry no message of their own)."""
    if "phase" in figures:
        return f"{figures['phase']}: {figures.get('detail') or ('started' if message == 'PhaseStarted' else 'done')}"
    if message and (" " in message or not message[:1].isupper()):
        return message
    return ""  # a bare type name (Progress, ChunkLoaded): the figures say it better


def journal_line(at: str, kind: str, actor: str | None, data: Mapping[str, Any]) -> str:
    clock = at[11:19] if len(at) >= 19 else at
    who = f" [{actor}]" if actor else ""
    summary = entry_summary(kind, data)
    return f"{clock} {kind}{who}" + (f": {summary}" if summary else "")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def eta_text(seconds: Any) -> str:
    value = _number(seconds)
    if value is None:
        return "-"
    s = int(value)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def is_progress(figures: Mapping[str, Any]) -> bool:
    return "done" in figures and "total" in figures


def figures_text(figures: Mapping[str, Any]) -> str:
    """``1,234 / 5,000 · 312/s · ETA 0:12 · throttled 3 · failed 0`` (only what is known)."""
    done, total = int(figures.get("done") or 0), int(figures.get("total") or 0)
    parts = [f"{done:,} / {total:,}"]
    rate = _number(figures.get("rate"))
    if rate is not None:
        parts.append(f"{rate:,.0f}/s")
    if "eta" in figures:
        parts.append(f"ETA {eta_text(figures.get('eta'))}")
    if "throttled" in figures:
        parts.append(f"throttled {int(figures.get('throttled') or 0):,}")
    if "failed" in figures:
        parts.append(f"failed {int(figures.get('failed') or 0):,}")
    return " · ".join(parts)
