"""The cutover procedure as data, and what the engine needs to run it.

- :mod:`.model` — a step (id, title, kind, dependencies, gate, action, check, click path,
  undo, point of no return) and a runbook (an ordered, validated tuple of steps).
- :mod:`.events` — the typed events the engine yields, one stream for every face.
- :mod:`.operator` — the operator's part (attest, confirm), which the CLI, the TUI and a
  rehearsal each implement.

Adding a step is adding data to the runbook; the engine (:mod:`cutover.engine`) never changes
for it.
"""
