"""TOML for ``cutover.toml``: writing profile tables, and finding the line of a key for messages.

Reading is ``tomllib``'s job; it says where a syntax error is but not where a valid key that
breaks a rule sits, so :func:`locate` and :func:`locate_top` find that line by a simple line
scan — good for files :func:`dump_tables` writes and for the usual hand edits; None where it
cannot tell. The writer knows strings (escaped as TOML basic strings), booleans, integers,
arrays of those, and one level of sub-tables — all a profile holds. Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["TomlWriteError", "dump_tables", "locate", "locate_top", "toml_key", "toml_string", "toml_value"]


class TomlWriteError(ValueError):
    """A value cannot be written as TOML (e.g. a string with unpaired surrogates)."""


# --- finding the line of a key ------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def _split_dotted(s: str) -> list[str]:
    return [part.strip().strip("\"'") for part in s.split(".")]


def _key_re(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"^\s*(?:{k}|\"{k}\"|'{k}')\s*(=|\.)")


def locate_top(text: str, key: str | None) -> int | None:
    """Line of the top-level ``key`` (or of its ``[key...]`` table header), before any other table."""
    if key is None:
        return None
    first = key.split(".")[0]
    key_re = _key_re(first)
    for i, raw in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(raw)
        if m:
            if _split_dotted(m.group(1))[0] == first:
                return i
            return None  # top-level keys come before the first table header
        if key_re.match(raw):
            return i
    return None


def locate(text: str, profile: str, key: str | None) -> int | None:
    """Line of ``key`` (``a`` or ``a.b``) in ``[profiles.PROFILE]``; else of the table header."""
    lines = text.splitlines()
    parts = key.split(".") if key else []
    table = ["profiles", profile]
    header_line = sub_header_line = None
    current: list[str] | None = None
    for i, raw in enumerate(lines, 1):
        m = _HEADER_RE.match(raw)
        if m:
            current = _split_dotted(m.group(1))
            if current == table and header_line is None:
                header_line = i
            if len(parts) > 1 and current == table + parts[:-1] and sub_header_line is None:
                sub_header_line = i
            continue
        if not parts or current is None:
            continue
        if current == table and _key_re(parts[0]).match(raw):
            return i  # `key = ...`, or `entity_names.x = ...` / `entity_names = {...}`
        if len(parts) > 1 and current == table + parts[:-1] and _key_re(parts[-1]).match(raw):
            return i
    if sub_header_line is not None:
        return sub_header_line
    if header_line is not None:
        return header_line
    # profiles written inline: `prod = { ... }` under [profiles], or `profiles.prod.kind = ...`
    inline = re.compile(rf"^\s*(?:profiles\s*\.\s*)?[\"']?{re.escape(profile)}[\"']?\s*[.=]")
    for i, raw in enumerate(lines, 1):
        if inline.match(raw):
            return i
    return None


# --- writing ------------------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif 0xD800 <= o <= 0xDFFF:
            raise TomlWriteError(
                f"the value {s.encode('utf-8', 'backslashreplace').decode('ascii', 'backslashreplace')!r} contains undecodable bytes and cannot be written to TOML"
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_key(k: str) -> str:
    return k if _BARE_KEY_RE.fullmatch(k) else toml_string(k)


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_tables(prefix: str, tables: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """``header`` then one ``[prefix.NAME]`` table per entry, in order; a dict value becomes a
    ``[prefix.NAME.KEY]`` sub-table after the table's plain keys."""
    chunks = [header] if header else []
    for name, table in tables.items():
        lines = [f"[{prefix}.{toml_key(name)}]"]
        subtables = []
        for key, value in table.items():
            if isinstance(value, Mapping):
                subtables.append((key, value))
            else:
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
        for sub, values in subtables:
            lines.append("")
            lines.append(f"[{prefix}.{toml_key(name)}.{toml_key(sub)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items())
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)
