"""The mapping file: how a legacy extract's dialect maps onto the column contract.

Most extracts need no mapping: reading sniffs the format, the encoding (byte order marks,
valid UTF-8) and the delimiter, and the README's column contract names the columns. A mapping
file (TOML) says what sniffing cannot know:

.. code-block:: toml

    [columns]                  # legacy column name = our column name (README, "The legacy extract")
    "Meilenstein-ID" = "legacy_id"
    "Buchungskreis"  = "legal_entity"
    "Betrag netto"   = "amount"

    [ignore]
    columns = ["Bemerkung"]    # legacy columns that are read and deliberately not used

    [status]                   # legacy status values (compared trimmed, case-insensitively)
    invoiced     = ["Fakturiert"]
    not_invoiced = ["Offen", "Storniert"]

    [format]
    encoding            = "cp1252"     # any Python codec name; a byte order mark in the file wins
    delimiter           = ";"          # one character; default: sniffed from the header line
    decimal_separator   = ","          # "." (default) or ","
    thousands_separator = "."          # default none; "." "," " " or "'" (must differ from the decimal one)
    date_format         = "%d.%m.%Y"   # %Y or %y, %m, %d and literal characters; default ISO "%Y-%m-%d"
    sheet               = "Meilensteine"  # XLSX: the sheet to read; default the first

Rules:

- Every table and key is optional; a key the tool does not know is refused (a typo must not be
  silently ignored), and so is a value of the wrong type or outside its set. Errors are
  :class:`cutover.errors.InputError` naming the file, the line (where the key can be found)
  and the key.
- ``[columns]`` maps legacy names to the contract's names (values must be contract names);
  a contract column whose own name appears in the file needs no entry. Two legacy names may
  map to one column (alternatives); a file that holds both is refused (``column.duplicate``).
- ``[status]`` replaces the default values (``Invoiced`` / ``NotInvoiced``) entirely; the two
  lists must not share a value. Any other value in the file is ``legacy_status.unknown``.
- ``[format]`` ``decimal_separator`` and ``thousands_separator`` apply to the ``amount`` and
  ``tax_amount`` texts (validation parses them, :mod:`.validate`); XLSX and Parquet numeric
  cells are rendered with the declared decimal separator so that one parser reads both.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..errors import InputError
from .model import COLUMNS

__all__ = ["DEFAULT_DATE_FORMAT", "Mapping", "load_mapping"]

DEFAULT_DATE_FORMAT = "%Y-%m-%d"
DEFAULT_INVOICED = ("Invoiced",)
DEFAULT_NOT_INVOICED = ("NotInvoiced",)
DECIMAL_SEPARATORS = (".", ",")
THOUSANDS_SEPARATORS = (".", ",", " ", "'")
_DATE_DIRECTIVE_RE = re.compile(r"%(.)")
_DATE_DIRECTIVES = {"Y", "y", "m", "d"}

_KEYS: dict[str, set[str] | None] = {
    "columns": None,  # free keys (legacy names)
    "ignore": {"columns"},
    "status": {"invoiced", "not_invoiced"},
    "format": {"encoding", "delimiter", "decimal_separator", "thousands_separator", "date_format", "sheet"},
}


@dataclass(frozen=True)
class Mapping:
    """A legacy extract's dialect. ``Mapping()`` is the README's contract as it stands."""

    columns: dict[str, str] = field(default_factory=dict)  # legacy name -> contract name
    ignore: frozenset[str] = frozenset()  # legacy names read and deliberately not used
    invoiced: tuple[str, ...] = DEFAULT_INVOICED
    not_invoiced: tuple[str, ...] = DEFAULT_NOT_INVOICED
    encoding: str | None = None  # None: sniffed (BOM, else strict UTF-8)
    delimiter: str | None = None  # None: sniffed from the header line
    decimal_separator: str = "."
    thousands_separator: str | None = None
    date_format: str = DEFAULT_DATE_FORMAT
    sheet: str | None = None  # XLSX: None = the first sheet
    path: Path | None = None  # where it was read from (for messages)

    def target(self, header: str) -> str | None:
        """The contract column a file header stands for, or None (unknown)."""
        if header in self.columns:
            return self.columns[header]
        if header in COLUMNS:
            return header
        return None

    def status_of(self, value: str) -> str | None:
        """``"invoiced"``, ``"not_invoiced"`` or None for a legacy status text."""
        key = value.strip().casefold()
        if key in {v.strip().casefold() for v in self.invoiced}:
            return "invoiced"
        if key in {v.strip().casefold() for v in self.not_invoiced}:
            return "not_invoiced"
        return None


def _line_of(text: str, table: str | None, key: str | None) -> int | None:
    """The line of ``key`` in ``[table]`` (or of the table header); with no table, of the
    top-level ``key`` or its ``[key]`` header. A line scan; None where it cannot tell."""
    header_re = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
    current: str | None = None
    header_line = None
    for number, line in enumerate(text.splitlines(), 1):
        m = header_re.match(line)
        if m:
            current = m.group(1).strip().strip("\"'")
            if table is None and current == key:
                return number
            if current == table and header_line is None:
                header_line = number
            continue
        if key is None or current != table:
            continue
        k = re.escape(key)
        if re.match(rf"^\s*(?:{k}|\"{k}\"|'{k}')\s*=", line):
            return number
    return header_line


def _fail(path: Path, text: str, table: str | None, key: str | None, message: str, fix: str | None = None) -> NoReturn:
    line = _line_of(text, table, key)
    name = f"[{table}] {key}" if table and key else (f"[{table}]" if table else key)
    where = f"{path}" + (f", line {line}" if line else "") + (f", {name}" if name else "")
    raise InputError(message, where=where, fix=fix)


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file (see the module docstring). Errors are InputError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("the mapping file does not exist", where=str(path), fix="check the path") from None
    except OSError as exc:
        raise InputError(f"the mapping file cannot be read ({exc.strerror})", where=str(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the mapping file is not UTF-8 (byte {exc.start})", where=str(path), fix="save it as UTF-8"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", where=str(path)) from None

    for table, value in doc.items():
        if table not in _KEYS:
            _fail(path, text, None, table, f"unknown table {table!r}", f"use only {', '.join(sorted(_KEYS))}")
        if not isinstance(value, dict):
            _fail(path, text, None, table, f"{table!r} must be a table ([{table}])")
        allowed = _KEYS[table]
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    _fail(path, text, table, key, f"unknown key {key!r}", f"use only {', '.join(sorted(allowed))}")

    columns: dict[str, str] = {}
    for legacy, ours in doc.get("columns", {}).items():
        if not isinstance(ours, str) or ours not in COLUMNS:
            _fail(
                path,
                text,
                "columns",
                legacy,
                f"{ours!r} is not a column of the extract contract",
                f"map to one of {', '.join(COLUMNS)}",
            )
        columns[legacy] = ours

    ignore: frozenset[str] = frozenset()
    if "columns" in doc.get("ignore", {}):
        names = _strings(doc["ignore"]["columns"])
        if names is None:
            _fail(path, text, "ignore", "columns", "must be a list of column names")
        clash = sorted(n for n in names if n in columns or n in COLUMNS)
        if clash:
            _fail(path, text, "ignore", "columns", f"{clash[0]!r} is used, it cannot also be ignored")
        ignore = frozenset(names)

    status = doc.get("status", {})
    invoiced, not_invoiced = DEFAULT_INVOICED, DEFAULT_NOT_INVOICED
    for key in ("invoiced", "not_invoiced"):
        if key in status:
            values = _strings(status[key])
            if not values or any(not v.strip() for v in values):
                _fail(path, text, "status", key, "must be a non-empty list of non-empty status texts")
            if key == "invoiced":
                invoiced = values
            else:
                not_invoiced = values
    both = {v.strip().casefold() for v in invoiced} & {v.strip().casefold() for v in not_invoiced}
    if both:
        _fail(path, text, "status", "not_invoiced", f"{sorted(both)[0]!r} is listed as invoiced and as not invoiced")

    fmt = doc.get("format", {})
    for key, value in fmt.items():
        if not isinstance(value, str):
            _fail(path, text, "format", key, f"must be a string, not {type(value).__name__}")
    encoding = fmt.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            _fail(
                path, text, "format", "encoding", f"{encoding!r} is not an encoding", 'e.g. "utf-8", "cp1252", "utf-16"'
            )
    delimiter = fmt.get("delimiter")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        _fail(path, text, "format", "delimiter", f"{delimiter!r} must be one character (not a quote or line break)")
    decimal = fmt.get("decimal_separator", ".")
    if decimal not in DECIMAL_SEPARATORS:
        _fail(path, text, "format", "decimal_separator", f"{decimal!r} is not '.' or ','")
    thousands = fmt.get("thousands_separator")
    if thousands is not None and (thousands not in THOUSANDS_SEPARATORS or thousands == decimal):
        _fail(
            path,
            text,
            "format",
            "thousands_separator",
            f"{thousands!r} is not one of {THOUSANDS_SEPARATORS} or equals the decimal separator",
        )
    date_format = fmt.get("date_format", DEFAULT_DATE_FORMAT)
    directives = _DATE_DIRECTIVE_RE.findall(date_format)
    if (
        set(directives) - _DATE_DIRECTIVES
        or len(directives) != len(set(directives))
        or not ({"Y", "y"} & set(directives))
        or not {"m", "d"} <= set(directives)
        or {"Y", "y"} <= set(directives)
    ):
        _fail(
            path,
            text,
            "format",
            "date_format",
            f"{date_format!r} must hold %Y (or %y), %m and %d once each and no other directive",
            'e.g. "%d.%m.%Y"',
        )
    sheet = fmt.get("sheet")
    if sheet is not None and not sheet.strip():
        _fail(path, text, "format", "sheet", "must name a sheet")

    return Mapping(
        columns=columns,
        ignore=ignore,
        invoiced=invoiced,
        not_invoiced=not_invoiced,
        encoding=encoding,
        delimiter=delimiter,
        decimal_separator=decimal,
        thousands_separator=thousands,
        date_format=date_format,
        sheet=sheet,
        path=path,
    )
