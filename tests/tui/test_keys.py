"""Keys: every binding has an id, none sits on a key terminals or tmux swallow, the [keys] table
of cutover.toml remaps them (checked with file and line), and help and palette list them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.keys import load_keymap, normalise_key, parse_keymap, refusal
from cutover.profile import ConfigError
from cutover.tui.app import CutoverApp, remappable_bindings
from cutover.tui.screens.help import HelpScreen

from .helpers import runbook, screen_text, until
from .synthetic import production_workspace, synthetic_app

DEFAULTS = remappable_bindings()


def test_every_binding_has_an_id_and_no_key_is_swallowed():
    assert {"run.continue", "run.next", "run.stop", "step.investigate", "step.copy", "app.quit", "app.help"} <= set(DEFAULTS)  # fmt: skip
    for binding_id, keys in DEFAULTS.items():
        for key in keys.split(","):
            assert refusal(normalise_key(key)) is None, (binding_id, key)
    parse_keymap("", Path("cutover.toml"), DEFAULTS)  # the defaults do not clash


@pytest.mark.parametrize(
    ("table", "line", "says"),
    [
        ('[keys]\n"run.continue" = "ctrl+s"\n', 2, "XOFF"),
        ('[keys]\n"run.continue" = "ctrl+b"\n', 2, "tmux's command prefix"),
        ('[keys]\n\n"run.contineu" = "f5"\n', 3, "'run.contineu' is not a binding id"),
        ('[keys]\n"run.next" = "hyper+x"\n', 2, "'hyper' is not a modifier"),
        ('[keys]\n"run.next" = "pgup"\n', 2, "'pgup' is not a key name"),
        ('[keys]\n"run.next" = "r"\n', 2, "r is bound to both 'run.continue' and 'run.next'"),
        ('[keys]\n"run.next" = 5\n', 2, "give a key as a string"),
        ("[keys\n", 1, "not valid TOML"),
    ],
)
def test_a_wrong_keys_table_names_file_line_and_reason(tmp_path, table, line, says):
    path = tmp_path / "cutover.toml"
    path.write_text(table, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_keymap(tmp_path, DEFAULTS)
    assert caught.value.path == path and caught.value.line == line
    assert says in str(caught.value)


def test_keys_are_normalised_as_textual_names_them(tmp_path):
    text = '[profiles]\n[keys]\n"run.continue" = ["f5", "R"]\n"app.help" = "?"\n"step.copy" = "Ctrl+Y"\n'
    keymap = parse_keymap(text, tmp_path / "cutover.toml", DEFAULTS)
    assert keymap == {"run.continue": "f5,R", "app.help": "question_mark", "step.copy": "ctrl+y"}


async def test_a_remapped_key_runs_its_action_and_shows_in_help(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    with open(ws / "cutover.toml", "a", encoding="utf-8") as f:
        f.write('\n[keys]\n"run.continue" = "f5"\n')
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = runbook(app)
        await pilot.press("r")
        await pilot.pause()
        assert not screen.running
        await pilot.press("f5")
        await until(pilot, lambda: screen.running or "loaded" in world, 5, "the remapped key")


async def test_the_keymap_moves_a_binding_by_its_id(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    world = {"maps": {"milestones": "stopped", "actuals": "stopped", "invoices": "stopped"}}
    app = synthetic_app(ws, world)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = runbook(app)
        app.set_keymap(parse_keymap('[keys]\n"run.continue" = "f5"\n', ws / "cutover.toml", DEFAULTS))
        await pilot.press("r")
        await pilot.pause()
        assert not screen.running and "loaded" not in world
        assert "f5 Run/retry" in screen_text(app)
        await pilot.press("f5")
        await until(pilot, lambda: "loaded" in world, 5, "the remapped key")


async def test_help_is_generated_from_the_bindings_and_the_palette_offers_every_action(tmp_path):
    ws = production_workspace(tmp_path / "ws", kind="sandbox")
    app = synthetic_app(ws, {"maps": {}})
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        text = screen_text(app)
        for words in ("Run/retry", "run.continue", "Investigate", "step.investigate", "Quit", "app.quit", "ctrl+p"):
            assert words in text, words
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"investig")
        await until(pilot, lambda: "Investigate" in screen_text(app), 5, "the palette")
        await pilot.press("enter")
        await until(pilot, lambda: "Investigate load" in screen_text(app), 5, "the action from the palette")


async def test_no_profiles_shows_how_to_add_one(tmp_path):
    app = CutoverApp(tmp_path / "empty")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "No environment profiles in this workspace yet." in screen_text(app)
        assert "cutover demo" in screen_text(app)
