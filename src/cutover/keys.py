"""Key bindings the operator remaps: the ``[keys]`` table of the workspace's ``cutover.toml``.

Over SSH, through tmux or screen, some keys never reach the program: tmux's prefix is
``ctrl+b``, screen's ``ctrl+a``, ``ctrl+s`` freezes the terminal (XOFF), ``ctrl+j`` arrives as
Enter. Every binding of the TUI therefore has a stable id, and the workspace may give it other
keys::

    [keys]
    "run.continue" = "r"               # one key
    "step.copy"    = ["y", "f6"]       # or several (any of them works)

:func:`load_keymap` reads the table and checks it all at once, before the TUI starts:

- the id must be one the caller knows (the TUI hands in its ids with their default keys; a
  typo would otherwise be ignored silently);
- each key is ``[modifier+…]key`` with modifiers ``ctrl``, ``shift``, ``alt``, ``meta``,
  ``super`` and a key that is one printable character, ``f1``–``f24``, or a named key
  (``enter``, ``escape``, ``pageup``, ``question_mark`` …: :data:`NAMED_KEYS`);
- a key that terminals or multiplexers swallow (:data:`SWALLOWED`) is refused with the reason;
- two ids may not end up on the same key.

Every problem is a :class:`cutover.profile.ConfigError` (exit 2) naming the file, the line and
the key. The result maps id → comma-separated keys, the form Textual's ``App.set_keymap``
takes. Stdlib only; this module knows nothing of Textual.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from .profile import ConfigError

CONFIG_FILENAME = "cutover.toml"
TABLE = "keys"

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super")

#: Keys that never reach a program reliably over SSH, in tmux or screen — and why.
SWALLOWED: Mapping[str, str] = {
    "ctrl+a": "screen's command prefix (and many people's tmux prefix)",
    "ctrl+b": "tmux's command prefix",
    "ctrl+c": "the terminal's interrupt key",
    "ctrl+d": "end of input in many terminals",
    "ctrl+h": "sent as Backspace by many terminals",
    "ctrl+i": "the same byte as Tab",
    "ctrl+j": "sent as Enter (line feed)",
    "ctrl+m": "the same byte as Enter",
    "ctrl+o": "discard-output in some terminals, and bound by tmux setups",
    "ctrl+s": "XOFF: freezes the terminal's output until ctrl+q",
    "ctrl+z": "suspends the program (job control)",
    "ctrl+backslash": "sends SIGQUIT",
    "ctrl+left_square_bracket": "the same byte as Escape",
}

#: Named keys, in Textual's spelling (punctuation by name, as Textual normalises it).
NAMED_KEYS = frozenset(
    {
        "enter", "escape", "tab", "space", "backspace", "delete", "insert", "home", "end",
        "pageup", "pagedown", "up", "down", "left", "right",
        "question_mark", "exclamation_mark", "full_stop", "comma", "minus", "plus", "slash",
        "backslash", "colon", "semicolon", "equals_sign", "left_square_bracket",
        "right_square_bracket", "left_curly_bracket", "right_curly_bracket", "left_parenthesis",
        "right_parenthesis", "number_sign", "dollar_sign", "percent_sign", "ampersand", "asterisk",
        "at", "underscore", "apostrophe", "quotation_mark", "grave_accent", "tilde",
        "circumflex_accent", "vertical_line", "less_than_sign", "greater_than_sign",
    }
    | {f"f{n}" for n in range(1, 25)}
)  # fmt: skip

# one printable character, as Textual names it (what the operator most likely writes: "?" …)
_CHAR_NAMES = {
    "?": "question_mark", "!": "exclamation_mark", ".": "full_stop", ",": "comma", "-": "minus",
    "+": "plus", "/": "slash", "\\": "backslash", ":": "colon", ";": "semicolon", "=": "equals_sign",
    "[": "left_square_bracket", "]": "right_square_bracket", "{": "left_curly_bracket",
    "}": "right_curly_bracket", "(": "left_parenthesis", ")": "right_parenthesis", "#": "number_sign",
    "$": "dollar_sign", "%": "percent_sign", "&": "ampersand", "*": "asterisk", "@": "at",
    "_": "underscore", "'": "apostrophe", '"': "quotation_mark", "`": "grave_accent", "~": "tilde",
    "^": "circumflex_accent", "|": "vertical_line", "<": "less_than_sign", ">": "greater_than_sign",
    " ": "space",
}  # fmt: skip

_HEADER_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def normalise_key(key: str) -> str:
    """``key`` in canonical form (``Ctrl+?`` → ``ctrl+question_mark``); ValueError says why not."""
    text = key.strip()
    if not text:
        raise ValueError("an empty key")
    if text == "+":
        return "plus"
    parts = text.split("+")
    if text.endswith("++"):  # "ctrl++"
        parts = [*text[:-2].split("+"), "+"]
    *mods, base = parts
    mods = [m.strip().lower() for m in mods]
    for m in mods:
        if m not in MODIFIERS:
            raise ValueError(f"'{m}' is not a modifier (use {', '.join(MODIFIERS)})")
    if len(set(mods)) != len(mods):
        raise ValueError("a modifier is repeated")
    if len(base) == 1:
        name = _CHAR_NAMES.get(base, base.lower() if mods and base.isalpha() else base)
        if not base.isprintable():
            raise ValueError("not a printable key")
    else:
        name = base.strip().lower()
        if name not in NAMED_KEYS:
            raise ValueError(f"'{base}' is not a key name (a character, f1–f24, or e.g. enter, escape, pageup)")
    ordered = [m for m in MODIFIERS if m in mods]
    return "+".join([*ordered, name])


def refusal(key: str) -> str | None:
    """Why ``key`` (canonical) may not be bound, or None."""
    reason = SWALLOWED.get(key)
    return f"{key} is {reason}; terminals or tmux/screen swallow it" if reason else None


def _line_of(text: str, binding_id: str | None) -> int | None:
    """Line of ``binding_id = …`` inside ``[keys]`` (or of the header when no id is given)."""
    in_table = False
    header = None
    key_re = re.compile(rf"^\s*(?:{re.escape(binding_id)}|\"{re.escape(binding_id)}\"|'{re.escape(binding_id)}')\s*=") if binding_id else None  # fmt: skip
    for number, raw in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(raw)
        if m:
            in_table = m.group(1).strip().strip("\"'") == TABLE
            if in_table and header is None:
                header = number
            continue
        if in_table and key_re is not None and key_re.match(raw):
            return number
    return header


def parse_keymap(text: str, path: Path, defaults: Mapping[str, str]) -> dict[str, str]:
    """The ``[keys]`` table of ``text`` checked against ``defaults`` (id → default keys)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(
            "not valid TOML; fix the syntax there", path=path, line=int(m.group(1)) if m else None
        ) from None
    table = data.get(TABLE)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError('must be a table: [keys] followed by id = "key" lines', path=path, key=TABLE)

    def fail(binding_id: str | None, message: str) -> ConfigError:
        return ConfigError(message, path=path, line=_line_of(text, binding_id), key=f"{TABLE}.{binding_id}" if binding_id else TABLE)  # fmt: skip

    keymap: dict[str, list[str]] = {}
    for binding_id, value in table.items():
        if binding_id not in defaults:
            raise fail(binding_id, f"'{binding_id}' is not a binding id; known: {', '.join(sorted(defaults))}")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise fail(binding_id, 'give a key as a string ("r") or several as a list (["r", "f5"])')
        keys: list[str] = []
        for raw in values:
            for piece in raw.split(",") if raw.strip() != "," else [raw]:
                try:
                    key = normalise_key(piece)
                except ValueError as exc:
                    raise fail(binding_id, f"{piece!r} is not a key: {exc}") from None
                why = refusal(key)
                if why:
                    raise fail(binding_id, f"{why}; choose another key")
                keys.append(key)
        keymap[binding_id] = list(dict.fromkeys(keys))

    owner: dict[str, str] = {}
    for binding_id, default in defaults.items():
        keys = keymap.get(binding_id) or [normalise_key(k) for k in default.split(",") if k.strip()]
        for key in keys:
            other = owner.setdefault(key, binding_id)
            if other != binding_id:
                culprit = binding_id if binding_id in keymap else other
                raise fail(
                    culprit, f"{key} is bound to both '{other}' and '{binding_id}'; give one of them another key"
                )
    return {binding_id: ",".join(keys) for binding_id, keys in keymap.items()}


def load_keymap(workspace: str | Path, defaults: Mapping[str, str]) -> dict[str, str]:
    """The workspace's key remapping (empty when ``cutover.toml`` or its ``[keys]`` is absent)."""
    path = Path(workspace) / CONFIG_FILENAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror or exc}); check its permissions", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("is not UTF-8 text; save the file as UTF-8", path=path, line=raw[: exc.start].count(b"\n") + 1) from None  # fmt: skip
    return parse_keymap(text, path, defaults)


__all__ = ["MODIFIERS", "NAMED_KEYS", "SWALLOWED", "load_keymap", "normalise_key", "parse_keymap", "refusal"]
