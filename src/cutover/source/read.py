"""Reading a legacy extract: bytes → a table of text (:data:`.model.RAW_SCHEMA`), nothing parsed.

``read_extract(path, mapping)`` returns a :class:`.model.RawExtract`. Whatever is wrong with
the *file* (as opposed to a value in it) is a :class:`.model.Problem` in ``raw.problems``, so
that the error file lists every problem at once; only a path that cannot be read at all raises
:class:`cutover.errors.InputError` (exit 2).

Format — by content, never by the file name's extension:

- ``PK\\x03\\x04`` (a zip): XLSX, read with ``fastexcel`` (calamine), the mapping's sheet or the
  first one. The legacy ``.xls`` (OLE2) is refused (``file.format``: save it as XLSX or CSV;
  ``raw.format`` is then ``"xls"`` and the table empty).
- ``PAR1``: Parquet (polars).
- anything else: delimited text.

Text:

- Encoding. A byte order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) and is removed.
  Without one, the mapping's ``encoding`` is used if it names one, else the bytes must be valid
  UTF-8. **There is no silent fallback to cp1252**: almost any byte string "decodes" as cp1252,
  so a guess would turn a wrong export into wrong names without a word. A byte that cannot be
  decoded is a problem ``file.encoding`` naming its byte offset and row (at most
  :data:`MAX_ENCODING_PROBLEMS` are listed; the cells are read with U+FFFD in their place so
  that the rest of the file is still checked, and the problem keeps anything from loading).
  NUL bytes in a file without a BOM mean UTF-16 without a byte order mark: ``file.encoding``.
- Delimiter: the mapping's, else sniffed among ``,`` ``;`` tab ``|``: the candidate that splits
  the header into the most fields while the following lines (first 64 KiB) split into the same
  number (quotes respected); a header that no candidate splits is one column.
- Records are split by Python's ``csv`` module in strict RFC 4180 mode (quoted fields may hold
  the delimiter, doubled quotes and line breaks; ``\\n``, ``\\r\\n`` and ``\\r`` all end a
  record). This is the one per-record loop in reading, on purpose: the row number of a ragged
  row or of a broken quote must be exact, and no frame reader reports them. A quote that is
  not closed, or text after a closing quote, is ``file.quote``; a record with more or fewer
  fields than the header is ``file.ragged-row``. Such records are left out of the table (their
  problem keeps anything from loading) but counted in ``raw.records``.

Typed cells (XLSX, Parquet) are rendered as text, so that validation has one parser:

- numbers: doubles by ``repr`` (the shortest text that round-trips, never an exponent: via
  ``Decimal(repr(x))``), decimals exactly, integers as digits, a whole double without ``.0``
  (Excel has no integers: line number ``3`` is the double 3.0); the ``.`` becomes the mapping's
  decimal separator, so a German mapping reads numeric cells and text cells alike.
  In XLSX the ``amount``, ``tax_amount`` and ``contract_line`` columns are read as doubles
  where a cell holds a number (a numeric cell, or text that reads as a plain number), and as
  the text written otherwise.
- dates: ISO ``YYYY-MM-DD`` (an XLSX date cell, a Parquet Date, a Datetime at midnight); a
  date-time with a time of day stays ``YYYY-MM-DD HH:MM:SS`` (validation refuses it: a
  milestone date is a day).
- XLSX rows are numbered from the sheet's first non-empty row, which must be the header
  (calamine does not report leading empty rows).

Header and columns (every format): names are trimmed; the mapping renames legacy names to the
contract's (:meth:`.mapping.Mapping.target`). A contract column not found is ``column.missing``
(it is added as an all-null column, and validation skips its rules); one found twice is
``column.duplicate`` (the first is used); any other column is ``column.unknown`` unless the
mapping lists it under ``[ignore] columns`` — nothing is silently ignored. A file with no
bytes (or nothing but a BOM and white space) is ``file.empty``; a header with no data rows
``file.no-rows``. A row whose every cell is empty (spreadsheets write them at the end of an
export) is skipped, and still counts in the row numbers of the rows after it. Empty cells are
null; every other cell is the text as written (validation trims it).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..errors import InputError
from ..money import from_double
from .mapping import Mapping
from .model import COLUMNS, FILE, RAW_SCHEMA, ROW, Problem, RawExtract

__all__ = ["DELIMITERS", "MAX_ENCODING_PROBLEMS", "read_extract"]

DELIMITERS = (",", ";", "\t", "|")
MAX_ENCODING_PROBLEMS = 20
SNIFF_BYTES = 64 * 1024
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ZIP = b"PK\x03\x04"
_PARQUET = b"PAR1"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_NUMERIC_COLUMNS = ("amount", "tax_amount", "contract_line")
_DATE_COLUMNS = ("milestone_date",)
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass
class _Table:
    """A format's table before the column contract: header texts, positional text columns."""

    header: list[str]
    frame: pl.DataFrame  # String columns c0..cN-1, plus ROW
    header_row: int = 1
    records: int = 0  # data records that could not be put in the frame (ragged, broken quotes)
    problems: list[Problem] = field(default_factory=list)


def read_extract(path: str | Path, mapping: Mapping | None = None) -> RawExtract:
    """Read the extract at ``path`` into text (see the module docstring)."""
    path = Path(path)
    mapping = mapping or Mapping()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("the extract does not exist", where=str(path), fix="check the path") from None
    except IsADirectoryError:
        raise InputError("the extract is a directory, not a file", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"the extract cannot be read ({exc.strerror or exc})", where=str(path)) from None
    name = path.name
    sha256 = hashlib.sha256(data).hexdigest()
    details: dict[str, str] = {}
    if data.startswith(_ZIP):
        fmt = "xlsx"
        table = _read_xlsx(data, name, mapping, details)
    elif data.startswith(_PARQUET):
        fmt = "parquet"
        table = _read_parquet(data, name, mapping, details)
    elif data.startswith(_OLE2):
        fmt = "xls"
        table = [
            Problem(
                name,
                None,
                None,
                None,
                "file.format",
                "this is an old Excel .xls workbook, which is not read; save it as .xlsx (Excel Workbook) or CSV UTF-8",
            )
        ]
    else:
        fmt = "csv"
        table = _read_text(data, name, mapping, details)
    if isinstance(table, list):  # the file could not be read as a table: only problems
        return _raw(path, fmt, sha256, details, table)
    frame, problems, records = _assemble(table, name, mapping)
    return RawExtract(
        path=path,
        frame=frame,
        format=fmt,
        sha256=sha256,
        details=details,
        problems=table.problems + problems,
        records=records,
    )


def _raw(path: Path, fmt: str, sha256: str, details: dict[str, str], problems: list[Problem]) -> RawExtract:
    return RawExtract(
        path=path, frame=pl.DataFrame(schema=RAW_SCHEMA), format=fmt, sha256=sha256, details=details, problems=problems
    )


# --- text -----------------------------------------------------------------------------------


def _encoding_fix(encoding: str, sniffed: bool) -> str:
    if sniffed:
        return (
            "re-export the file as UTF-8; if it is a Windows export (e.g. Excel 'CSV (semicolon)'), "
            'set encoding = "cp1252" under [format] in the mapping file'
        )
    return f"check that the file is {encoding} (the mapping file's [format] encoding), or re-export it as UTF-8"


def _decode(body: bytes, encoding: str, offset: int) -> tuple[str, list[tuple[int, int]]]:
    """``body`` decoded strictly; each undecodable byte sequence becomes U+FFFD and is reported
    as (byte offset in the file, offset in the text) — at most MAX_ENCODING_PROBLEMS of them."""
    parts: list[str] = []
    errors: list[tuple[int, int]] = []
    length = 0
    pos = 0
    while True:
        try:
            rest = body[pos:].decode(encoding)
        except UnicodeDecodeError as exc:
            good = body[pos : pos + exc.start].decode(encoding)
            parts.append(good)
            length += len(good)
            errors.append((offset + pos + exc.start, length))
            parts.append("\ufffd")
            length += 1
            pos += max(exc.end, exc.start + 1)
            if len(errors) >= MAX_ENCODING_PROBLEMS:
                parts.append(body[pos:].decode(encoding, errors="replace"))
                break
            continue
        parts.append(rest)
        break
    return "".join(parts), errors


def _sniff_delimiter(text: str) -> str:
    sample = text[:SNIFF_BYTES]
    if len(text) > SNIFF_BYTES:  # cut at a line end so the last record is whole (or dropped)
        cut = max(sample.rfind("\n"), sample.rfind("\r"))
        sample = sample[: cut if cut > 0 else len(sample)]
    best, best_score = ",", (-1, 1)
    for candidate in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(1 for r in rows[1:] if len(r) == width), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _read_text(data: bytes, name: str, mapping: Mapping, details: dict[str, str]) -> _Table | list[Problem]:
    encoding = None
    bom = b""
    for mark, codec in _BOMS:
        if data.startswith(mark):
            encoding, bom = codec, mark
            break
    sniffed = encoding is None and mapping.encoding is None
    if encoding is None:
        encoding = mapping.encoding or "utf-8"
    details["encoding"] = encoding + ("-sig" if bom and encoding == "utf-8" else "")
    body = data[len(bom) :]
    if sniffed and b"\x00" in body[:4096]:
        return [
            Problem(
                name,
                None,
                None,
                None,
                "file.encoding",
                "the file holds NUL bytes and has no byte order mark: it looks like UTF-16 without a BOM; "
                'save it as UTF-8, or set encoding = "utf-16-le" (or "utf-16-be") under [format] in the mapping file',
            )
        ]
    text, bad = _decode(body, encoding, len(bom))
    if not text.strip():
        return [Problem(name, None, None, None, "file.empty", "the file is empty: export the milestones again")]
    delimiter = mapping.delimiter or _sniff_delimiter(text)
    details["delimiter"] = _DELIMITER_NAMES.get(delimiter, delimiter)

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    records: list[list[str] | None] = []
    ends: list[int] = []  # physical line on which each record ends
    broken: list[tuple[int, str]] = []
    iterator = iter(reader)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append(None)
            ends.append(reader.line_num)
            broken.append((len(records), str(exc)))
            continue
        records.append(record)
        ends.append(reader.line_num)

    problems: list[Problem] = []
    for byte_offset, text_offset in bad:
        line = _physical_line(text, text_offset)
        row = next((i + 1 for i, end in enumerate(ends) if end >= line), len(ends) or 1)
        value = data[byte_offset : byte_offset + 1].hex().upper()
        problems.append(
            Problem(
                name,
                row,
                None,
                f"0x{value}",
                "file.encoding",
                f"byte {byte_offset} (0x{value}) is not valid {encoding}: {_encoding_fix(encoding, sniffed)}",
            )
        )
    for row, message in broken:
        problems.append(
            Problem(
                name,
                row,
                None,
                None,
                "file.quote",
                f"a quoted field is not closed, or text follows its closing quote ({message}); "
                'enclose a field that holds the delimiter, a quote or a line break in double quotes and double the quotes inside ("")',
            )
        )

    header_index = next((i for i, r in enumerate(records) if r and any(c.strip() for c in r)), None)
    if header_index is None:
        return problems or [
            Problem(name, None, None, None, "file.empty", "the file is empty: export the milestones again")
        ]
    header = records[header_index]
    width = len(header)
    good_rows: list[list[str]] = []
    numbers: list[int] = []
    skipped = 0
    for index in range(header_index + 1, len(records)):
        record = records[index]
        row = index + 1
        if record is None:
            skipped += 1
            continue
        if not record or not any(c.strip() for c in record):
            continue  # a blank row
        if len(record) != width:
            skipped += 1
            problems.append(
                Problem(
                    name,
                    row,
                    None,
                    f"{len(record)} fields",
                    "file.ragged-row",
                    f"the row has {len(record)} fields, the header has {width}; a field holding the delimiter "
                    f"({_DELIMITER_NAMES.get(delimiter, delimiter)}) must be quoted, and every row needs every column",
                )
            )
            continue
        good_rows.append(record)
        numbers.append(row)
    names = [f"c{i}" for i in range(width)]
    frame = pl.DataFrame(good_rows, schema={n: pl.String() for n in names}, orient="row").with_columns(
        pl.Series(ROW, numbers, dtype=pl.Int64())
    )
    return _Table(header, frame, header_row=header_index + 1, records=skipped, problems=problems)


def _physical_line(text: str, offset: int) -> int:
    prefix = text[:offset]
    if "\n" in text:
        return prefix.count("\n") + 1
    return prefix.count("\r") + 1


# --- typed cells --------------------------------------------------------------------------------


def _double_text(series: pl.Series, decimal_separator: str) -> pl.Series:
    """Doubles as the decimal they were meant to be (:func:`cutover.money.from_double`) written out in full
    (no exponent), a whole number without ``.0``; NaN and infinities as written by polars."""
    text = series.cast(pl.String)
    exponent = text.str.contains("e", literal=True).fill_null(False)
    if exponent.any():  # rare (< 1e-4 or ≥ 1e16): fix just those cells through Decimal
        positions = exponent.arg_true()
        fixed = [format(from_double(series[i]), "f") for i in positions.to_list()]
        text = text.scatter(positions, fixed)
    text = text.str.replace(r"^(-?\d+)\.0$", "${1}")
    if decimal_separator != ".":
        text = text.str.replace(".", decimal_separator, literal=True)
    return text


def _typed_text(series: pl.Series, decimal_separator: str) -> pl.Series | None:
    """A typed Parquet column as text; None for a type that has no text form here."""
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if dtype.is_float():
        return _double_text(series.cast(pl.Float64), decimal_separator)
    if dtype.is_integer():
        return series.cast(pl.String)
    if isinstance(dtype, pl.Decimal):
        text = series.cast(pl.String)
        return text.str.replace(".", decimal_separator, literal=True) if decimal_separator != "." else text
    if dtype == pl.Date:
        return series.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return _datetime_text(series)
    if dtype == pl.Boolean:
        return series.cast(pl.String)
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return series.cast(pl.String)
    return None


def _datetime_text(series: pl.Series) -> pl.Series:
    frame = pl.DataFrame({"v": series})
    return frame.select(
        pl.when(pl.col("v").dt.truncate("1d") == pl.col("v"))
        .then(pl.col("v").dt.strftime("%Y-%m-%d"))
        .otherwise(pl.col("v").dt.strftime("%Y-%m-%d %H:%M:%S"))
    ).to_series()


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _read_parquet(data: bytes, name: str, mapping: Mapping, details: dict[str, str]) -> _Table | list[Problem]:
    try:
        source = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:
        return [
            Problem(
                name,
                None,
                None,
                None,
                "file.unreadable",
                f"the Parquet file cannot be read ({_first_line(exc)}); export it again",
            )
        ]
    header = list(source.columns)
    if not header:
        return [Problem(name, None, None, None, "file.empty", "the Parquet file has no columns: export it again")]
    problems: list[Problem] = []
    columns: dict[str, pl.Series] = {}
    for i, column in enumerate(header):
        text = _typed_text(source[column], mapping.decimal_separator)
        if text is None:
            problems.append(
                Problem(
                    name,
                    1,
                    column,
                    str(source[column].dtype),
                    "column.type",
                    f"the column is of type {source[column].dtype}, which is not read; write it as text, a number or a date",
                )
            )
            text = pl.Series([None] * source.height, dtype=pl.String())
        columns[f"c{i}"] = text.alias(f"c{i}")
    frame = pl.DataFrame(columns).with_columns(pl.int_range(2, source.height + 2, dtype=pl.Int64()).alias(ROW))
    return _Table(header, frame, problems=problems)


def _read_xlsx(data: bytes, name: str, mapping: Mapping, details: dict[str, str]) -> _Table | list[Problem]:
    import fastexcel  # the calamine engine polars uses for read_excel

    try:
        reader = fastexcel.read_excel(data)
        sheets = list(reader.sheet_names)
    except Exception as exc:
        return [
            Problem(
                name,
                None,
                None,
                None,
                "file.unreadable",
                f"the workbook cannot be read ({_first_line(exc)}); save it again as .xlsx",
            )
        ]
    if not sheets:
        return [Problem(name, None, None, None, "file.empty", "the workbook has no sheet")]
    if mapping.sheet is not None and mapping.sheet not in sheets:
        return [
            Problem(
                name,
                None,
                None,
                mapping.sheet,
                "file.sheet",
                f"the workbook has no sheet {mapping.sheet!r} (it has {', '.join(repr(s) for s in sheets)}); "
                "fix [format] sheet in the mapping file",
            )
        ]
    sheet = mapping.sheet if mapping.sheet is not None else sheets[0]
    details["sheet"] = sheet
    try:
        text = reader.load_sheet(sheet, header_row=None, dtypes="string").to_polars()
    except Exception as exc:
        return [
            Problem(
                name, None, None, None, "file.unreadable", f"the sheet {sheet!r} cannot be read ({_first_line(exc)})"
            )
        ]
    if text.height == 0 or text.width == 0:
        return [Problem(name, None, None, None, "file.empty", f"the sheet {sheet!r} is empty")]
    header = [("" if v is None else str(v)) for v in text.row(0)]
    targets = [mapping.target(h.strip()) for h in header]
    typed: dict[int, str] = {}
    for i, target in enumerate(targets):
        if target in _NUMERIC_COLUMNS:
            typed[i] = "float"
        elif target in _DATE_COLUMNS:
            typed[i] = "datetime"
    columns = {f"c{i}": text.to_series(i).alias(f"c{i}") for i in range(text.width)}
    if typed:
        try:
            cells = reader.load_sheet(sheet, header_row=None, dtypes=typed).to_polars()
        except Exception as exc:
            return [
                Problem(
                    name,
                    None,
                    None,
                    None,
                    "file.unreadable",
                    f"the sheet {sheet!r} cannot be read ({_first_line(exc)})",
                )
            ]
        for i, kind in typed.items():
            raw = columns[f"c{i}"]
            value = cells.to_series(i)
            if kind == "float":
                number = _double_text(value.cast(pl.Float64), mapping.decimal_separator)
                columns[f"c{i}"] = pl.select(
                    pl.when(value.is_not_null()).then(number).otherwise(raw).alias(f"c{i}")
                ).to_series()
            else:  # a real date cell at midnight is a day; anything else stays as written
                is_date = value.is_not_null() & raw.str.contains(r"^\d{4}-\d{2}-\d{2} 00:00:00$").fill_null(False)
                columns[f"c{i}"] = pl.select(
                    pl.when(is_date).then(raw.str.slice(0, 10)).otherwise(raw).alias(f"c{i}")
                ).to_series()
    frame = (
        pl.DataFrame(columns)
        .with_columns(pl.int_range(1, text.height + 1, dtype=pl.Int64()).alias(ROW))
        .slice(1)  # the header row
    )
    return _Table(header, frame)


# --- the column contract --------------------------------------------------------------------------


def _assemble(table: _Table, name: str, mapping: Mapping) -> tuple[pl.DataFrame, list[Problem], int]:
    problems: list[Problem] = []
    header = [h.replace("\ufeff", "").strip() for h in table.header]
    chosen: dict[str, int] = {}
    row = table.header_row
    for i, legacy in enumerate(header):
        target = mapping.target(legacy)
        if target is None:
            if legacy in mapping.ignore:
                continue
            shown = legacy if legacy else f"(column {i + 1}, no name)"
            problems.append(
                Problem(
                    name,
                    row,
                    shown,
                    legacy,
                    "column.unknown",
                    f"column {i + 1} ({shown}) is not a column of the extract; remove it, map it to one under [columns] "
                    "or list it under [ignore] columns in the mapping file",
                )
            )
            continue
        if target in chosen:
            problems.append(
                Problem(
                    name,
                    row,
                    target,
                    legacy,
                    "column.duplicate",
                    f"column {i + 1} ({legacy}) is {target} again (first: column {chosen[target] + 1}); keep one of them",
                )
            )
            continue
        chosen[target] = i
    for column in COLUMNS:
        if column not in chosen:
            legacy = [k for k, v in mapping.columns.items() if v == column]
            also = f" (or {', '.join(legacy)}, as the mapping file says)" if legacy else ""
            problems.append(
                Problem(
                    name,
                    row,
                    column,
                    None,
                    "column.missing",
                    f"the extract has no column {column}{also}; add it, or map the legacy column to it under [columns] "
                    "in the mapping file",
                )
            )

    frame = table.frame
    positional = [c for c in frame.columns if c != ROW]
    blank = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in positional])
    frame = frame.filter(~blank) if positional else frame.clear()
    raw = frame.select(
        *[
            (pl.col(f"c{chosen[c]}").replace("", None) if c in chosen else pl.lit(None, dtype=pl.String())).alias(c)
            for c in COLUMNS
        ],
        pl.lit(name, dtype=pl.String()).alias(FILE),
        pl.col(ROW).cast(pl.Int64()),
    )
    records = raw.height + table.records
    if records == 0:
        problems.append(
            Problem(
                name, None, None, None, "file.no-rows", "the file has a header but no milestone rows: export them again"
            )
        )
    return raw, problems, records
