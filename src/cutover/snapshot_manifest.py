"""The manifest of an AR/GL snapshot: what was read, its control totals, and the files' hashes.

A snapshot directory (:mod:`cutover.snapshot`) holds ``ar.parquet``, ``gl.parquet`` and
``manifest.json``. The manifest is what ``reconcile`` compares and what the evidence pack
carries; it is canonical JSON (sorted keys, two-space indent, money as decimal *text*, never a
JSON number, so no reader can turn it into a float):

- ``format`` (``cutover.snapshot/1``), ``label``, ``environment``, ``organization_id`` (the
  pinned one, or null), ``legal_entities`` (upper-case codes, sorted), ``started_utc`` /
  ``finished_utc`` (the read window, ISO-8601 ``…Z``);
- ``files``: per file (``ar``, ``gl``) its name, SHA-256, size in bytes and row count;
- ``ar``: ``by_legal_entity`` — rows, the sum of ``AmountMst`` (accounting currency), the
  highest ``RecId`` and ``Voucher`` (overall, and per voucher series: the voucher without its
  trailing digits, ``CIV-``), and per currency the rows and sums of ``AmountCur`` and
  ``AmountMst``; ``by_customer`` — one row per legal entity, customer and currency;
- ``gl``: ``lines_read`` / ``entries_read`` (before the legal-entity join), ``by_legal_entity``
  — lines, entries, sum of ``AccountingCurrencyAmount``, debit and credit totals (credit as a
  positive number: balance = debit - credit), the highest line and entry ``SourceKey`` and
  ``SubledgerVoucher``; ``by_main_account`` — the same sums per legal entity and main account.

Totals are computed by polars from the written Parquet files (so they describe exactly the
bytes that were hashed), as exact decimals, reading :data:`CHUNK_ROWS` rows at a time and
combining the partial sums (memory stays flat on millions of rows).

:func:`load_manifest` checks every file's SHA-256 against the manifest: a changed, missing
or truncated file raises :class:`SnapshotTampered` naming it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from .errors import ChecksFailed, InputError
from .journal import file_sha256

__all__ = [
    "FORMAT",
    "MANIFEST_FILE",
    "ArCurrencyTotal",
    "ArCustomerTotal",
    "ArEntityTotal",
    "FileRecord",
    "GlAccountTotal",
    "GlEntityTotal",
    "SnapshotManifest",
    "SnapshotMissing",
    "SnapshotTampered",
    "ar_totals",
    "gl_totals",
    "load_manifest",
    "money_text",
]

FORMAT = "cutover.snapshot/1"
MANIFEST_FILE = "manifest.json"
ZERO = Decimal(0)


class SnapshotMissing(InputError):
    """The snapshot asked for does not exist (or its manifest cannot be read)."""


class SnapshotTampered(ChecksFailed):
    """A snapshot file does not match its manifest: it changed after the snapshot was taken."""


def money_text(value: Decimal) -> str:
    """An exact amount as text, without the trailing zeros of the storage scale but with at
    least two decimals: ``1234.5600000000`` → ``"1234.56"``, ``5`` → ``"5.00"``."""
    value = Decimal(value)
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _dec(value: Any) -> Decimal:
    if value is None:
        return ZERO
    if isinstance(value, float):
        raise TypeError(f"{value!r} is a float; money in a manifest is decimal text")
    return Decimal(value)


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    name: str  # file name inside the snapshot directory
    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True)
class ArCurrencyTotal:
    rows: int
    amount_cur: Decimal
    amount_mst: Decimal


@dataclass(frozen=True)
class ArEntityTotal:
    legal_entity: str
    rows: int
    amount_mst: Decimal
    max_recid: int | None
    max_voucher: str | None
    max_voucher_by_series: dict[str, str]
    by_currency: dict[str, ArCurrencyTotal]


@dataclass(frozen=True)
class ArCustomerTotal:
    legal_entity: str
    customer: str
    currency: str
    rows: int
    amount_cur: Decimal
    amount_mst: Decimal


@dataclass(frozen=True)
class GlEntityTotal:
    legal_entity: str
    rows: int
    entries: int
    amount: Decimal
    debit: Decimal
    credit: Decimal
    max_line_key: int | None
    max_entry_key: int | None
    max_voucher: str | None
    max_voucher_by_series: dict[str, str]


@dataclass(frozen=True)
class GlAccountTotal:
    legal_entity: str
    main_account: str
    rows: int
    amount: Decimal
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class SnapshotManifest:
    label: str
    environment: str
    organization_id: str | None
    legal_entities: tuple[str, ...]
    started_utc: dt.datetime
    finished_utc: dt.datetime
    files: dict[str, FileRecord]
    ar_by_legal_entity: dict[str, ArEntityTotal]
    ar_by_customer: tuple[ArCustomerTotal, ...]
    gl_by_legal_entity: dict[str, GlEntityTotal]
    gl_by_main_account: tuple[GlAccountTotal, ...]
    gl_lines_read: int
    gl_entries_read: int
    format: str = FORMAT
    directory: Path | None = field(default=None, compare=False)  # where it was loaded from / written to
    sha256: str | None = field(default=None, compare=False)  # of manifest.json itself (for the journal)

    @property
    def ar_rows(self) -> int:
        return self.files["ar"].rows

    @property
    def gl_rows(self) -> int:
        return self.files["gl"].rows

    def to_json(self) -> dict[str, Any]:
        def cur(t: ArCurrencyTotal) -> dict:
            return {"rows": t.rows, "amount_cur": money_text(t.amount_cur), "amount_mst": money_text(t.amount_mst)}

        return {
            "format": self.format,
            "label": self.label,
            "environment": self.environment,
            "organization_id": self.organization_id,
            "legal_entities": list(self.legal_entities),
            "started_utc": _utc(self.started_utc),
            "finished_utc": _utc(self.finished_utc),
            "files": {
                k: {"name": f.name, "sha256": f.sha256, "bytes": f.bytes, "rows": f.rows} for k, f in self.files.items()
            },
            "ar": {
                "by_legal_entity": {
                    le: {
                        "rows": t.rows,
                        "amount_mst": money_text(t.amount_mst),
                        "max_recid": t.max_recid,
                        "max_voucher": t.max_voucher,
                        "max_voucher_by_series": dict(t.max_voucher_by_series),
                        "by_currency": {c: cur(v) for c, v in t.by_currency.items()},
                    }
                    for le, t in self.ar_by_legal_entity.items()
                },
                "by_customer": [
                    {
                        "legal_entity": c.legal_entity,
                        "customer": c.customer,
                        "currency": c.currency,
                        "rows": c.rows,
                        "amount_cur": money_text(c.amount_cur),
                        "amount_mst": money_text(c.amount_mst),
                    }
                    for c in self.ar_by_customer
                ],
            },
            "gl": {
                "lines_read": self.gl_lines_read,
                "entries_read": self.gl_entries_read,
                "by_legal_entity": {
                    le: {
                        "rows": t.rows,
                        "entries": t.entries,
                        "amount": money_text(t.amount),
                        "debit": money_text(t.debit),
                        "credit": money_text(t.credit),
                        "max_line_key": t.max_line_key,
                        "max_entry_key": t.max_entry_key,
                        "max_voucher": t.max_voucher,
                        "max_voucher_by_series": dict(t.max_voucher_by_series),
                    }
                    for le, t in self.gl_by_legal_entity.items()
                },
                "by_main_account": [
                    {
                        "legal_entity": a.legal_entity,
                        "main_account": a.main_account,
                        "rows": a.rows,
                        "amount": money_text(a.amount),
                        "debit": money_text(a.debit),
                        "credit": money_text(a.credit),
                    }
                    for a in self.gl_by_main_account
                ],
            },
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotManifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, this version reads {FORMAT!r}")
        ar, gl = data["ar"], data["gl"]
        return cls(
            label=data["label"],
            environment=data["environment"],
            organization_id=data.get("organization_id"),
            legal_entities=tuple(data["legal_entities"]),
            started_utc=_parse_utc(data["started_utc"]),
            finished_utc=_parse_utc(data["finished_utc"]),
            files={
                k: FileRecord(v["name"], v["sha256"], int(v["bytes"]), int(v["rows"])) for k, v in data["files"].items()
            },
            ar_by_legal_entity={
                le: ArEntityTotal(
                    le,
                    int(t["rows"]),
                    Decimal(t["amount_mst"]),
                    t["max_recid"],
                    t["max_voucher"],
                    dict(t["max_voucher_by_series"]),
                    {
                        c: ArCurrencyTotal(int(v["rows"]), Decimal(v["amount_cur"]), Decimal(v["amount_mst"]))
                        for c, v in t["by_currency"].items()
                    },
                )
                for le, t in ar["by_legal_entity"].items()
            },
            ar_by_customer=tuple(
                ArCustomerTotal(
                    c["legal_entity"],
                    c["customer"],
                    c["currency"],
                    int(c["rows"]),
                    Decimal(c["amount_cur"]),
                    Decimal(c["amount_mst"]),
                )
                for c in ar["by_customer"]
            ),
            gl_by_legal_entity={
                le: GlEntityTotal(
                    le,
                    int(t["rows"]),
                    int(t["entries"]),
                    Decimal(t["amount"]),
                    Decimal(t["debit"]),
                    Decimal(t["credit"]),
                    t["max_line_key"],
                    t["max_entry_key"],
                    t["max_voucher"],
                    dict(t["max_voucher_by_series"]),
                )
                for le, t in gl["by_legal_entity"].items()
            },
            gl_by_main_account=tuple(
                GlAccountTotal(
                    a["legal_entity"],
                    a["main_account"],
                    int(a["rows"]),
                    Decimal(a["amount"]),
                    Decimal(a["debit"]),
                    Decimal(a["credit"]),
                )
                for a in gl["by_main_account"]
            ),
            gl_lines_read=int(gl["lines_read"]),
            gl_entries_read=int(gl["entries_read"]),
        )


# --- totals from the written files ---------------------------------------------------------------

CHUNK_ROWS = 100_000  # totals read the files this many rows at a time (flat memory)


def _chunks(path: Path, columns: list[str]) -> Iterator[pl.DataFrame]:
    """`columns` of the Parquet file at `path`, CHUNK_ROWS rows at a time (at least one chunk)."""
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    for offset in range(0, max(rows, 1), CHUNK_ROWS):
        yield pl.scan_parquet(path).select(columns).slice(offset, CHUNK_ROWS).collect()


def _series(column: str) -> pl.Expr:
    return pl.col(column).str.replace(r"\d+$", "").alias("series")


def _voucher_series(chunk: pl.DataFrame, voucher: str) -> pl.DataFrame:
    return (
        chunk.filter(pl.col(voucher).is_not_null() & (pl.col(voucher) != ""))
        .group_by("legal_entity", _series(voucher))
        .agg(pl.col(voucher).max().alias("max"))
    )


def _combine(
    partials: list[pl.DataFrame], keys: list[str], sums: tuple[str, ...], maxes: tuple[str, ...] = ()
) -> pl.DataFrame:
    frame = pl.concat(partials, how="vertical")
    return frame.group_by(keys).agg(*[pl.col(c).sum() for c in sums], *[pl.col(c).max() for c in maxes]).sort(keys)


def _series_map(partials: list[pl.DataFrame]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for le, series, top in _combine(partials, ["legal_entity", "series"], (), ("max",)).iter_rows():
        out.setdefault(le, {})[series] = top
    return out


def ar_totals(
    path: Path, legal_entities: tuple[str, ...]
) -> tuple[dict[str, ArEntityTotal], tuple[ArCustomerTotal, ...]]:
    """AR control totals of ``ar.parquet`` for every legal entity in scope (zeros where it has no rows)."""
    columns = ["legal_entity", "AccountNum", "CurrencyCode", "AmountCur", "AmountMst", "RecId", "Voucher"]
    customers, tops, series = [], [], []
    voucher = pl.col("Voucher")
    for chunk in _chunks(path, columns):
        customers.append(
            chunk.group_by("legal_entity", "AccountNum", "CurrencyCode").agg(
                pl.len().cast(pl.Int64).alias("rows"),
                pl.col("AmountCur").sum().alias("cur"),
                pl.col("AmountMst").sum().alias("mst"),
            )
        )
        tops.append(
            chunk.group_by("legal_entity").agg(
                pl.col("RecId").max().alias("recid"), voucher.filter(voucher != "").max().alias("voucher")
            )
        )
        series.append(_voucher_series(chunk, "Voucher"))
    per_customer = _combine(customers, ["legal_entity", "AccountNum", "CurrencyCode"], ("rows", "cur", "mst"))
    per_currency = _combine([per_customer], ["legal_entity", "CurrencyCode"], ("rows", "cur", "mst"))
    per_le = {r[0]: r for r in _combine([per_customer], ["legal_entity"], ("rows", "mst")).iter_rows()}
    top = {r[0]: r for r in _combine(tops, ["legal_entity"], (), ("recid", "voucher")).iter_rows()}
    by_series = _series_map(series)
    currencies: dict[str, dict[str, ArCurrencyTotal]] = {}
    for le, code, rows, cur, mst in per_currency.iter_rows():
        currencies.setdefault(le, {})[code] = ArCurrencyTotal(rows, _dec(cur), _dec(mst))
    entities: dict[str, ArEntityTotal] = {}
    for le in legal_entities:
        _, rows, mst = per_le.get(le, (le, 0, None))
        _, recid, top_voucher = top.get(le, (le, None, None))
        entities[le] = ArEntityTotal(
            le, rows, _dec(mst), recid, top_voucher, by_series.get(le, {}), currencies.get(le, {})
        )
    by_customer = tuple(
        ArCustomerTotal(le, cust, code, rows, _dec(cur), _dec(mst))
        for le, cust, code, rows, cur, mst in per_customer.iter_rows()
    )
    return entities, by_customer


def gl_totals(
    path: Path, legal_entities: tuple[str, ...]
) -> tuple[dict[str, GlEntityTotal], tuple[GlAccountTotal, ...]]:
    """GL control totals of ``gl.parquet`` for every legal entity in scope (zeros where it has no rows)."""
    columns = [
        "legal_entity",
        "MainAccount",
        "AccountingCurrencyAmount",
        "SourceKey",
        "GeneralJournalEntry",
        "SubledgerVoucher",
    ]
    accounts, tops, entries, series = [], [], [], []
    amount, voucher = pl.col("AccountingCurrencyAmount"), pl.col("SubledgerVoucher")
    for chunk in _chunks(path, columns):
        accounts.append(
            chunk.group_by("legal_entity", "MainAccount").agg(
                pl.len().cast(pl.Int64).alias("rows"),
                amount.sum().alias("amount"),
                amount.filter(amount > 0).sum().alias("debit"),
                (-amount.filter(amount < 0)).sum().alias("credit"),
            )
        )
        tops.append(
            chunk.group_by("legal_entity").agg(
                pl.col("SourceKey").max().alias("line"),
                pl.col("GeneralJournalEntry").max().alias("entry"),
                voucher.filter(voucher != "").max().alias("voucher"),
            )
        )
        entries.append(chunk.select("legal_entity", "GeneralJournalEntry").unique())
        series.append(_voucher_series(chunk, "SubledgerVoucher"))
    per_account = _combine(accounts, ["legal_entity", "MainAccount"], ("rows", "amount", "debit", "credit"))
    per_le = {
        r[0]: r for r in _combine([per_account], ["legal_entity"], ("rows", "amount", "debit", "credit")).iter_rows()
    }
    top = {r[0]: r for r in _combine(tops, ["legal_entity"], (), ("line", "entry", "voucher")).iter_rows()}
    counted = pl.concat(entries).unique().group_by("legal_entity").agg(pl.len().alias("n"))
    n_entries = dict(counted.iter_rows())
    by_series = _series_map(series)
    result: dict[str, GlEntityTotal] = {}
    for le in legal_entities:
        _, rows, total, debit, credit = per_le.get(le, (le, 0, None, None, None))
        _, line, entry, top_voucher = top.get(le, (le, None, None, None))
        result[le] = GlEntityTotal(
            le,
            rows,
            n_entries.get(le, 0),
            _dec(total),
            _dec(debit),
            _dec(credit),
            line,
            entry,
            top_voucher,
            by_series.get(le, {}),
        )
    by_account = tuple(
        GlAccountTotal(le, acct, rows, _dec(total), _dec(debit), _dec(credit))
        for le, acct, rows, total, debit, credit in per_account.iter_rows()
    )
    return result, by_account


# --- loading and checking ------------------------------------------------------------------------


def load_manifest(path: str | Path, *, verify: bool = True) -> SnapshotManifest:
    """The manifest at ``path`` (a ``manifest.json`` or the snapshot directory holding it).

    With ``verify`` (the default) every file it lists must exist beside it with the recorded
    size and SHA-256; otherwise :class:`SnapshotTampered` names the file."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotMissing(
            "no snapshot manifest here", where=str(path), fix="take the snapshot first (cutover snapshot --label …)"
        ) from None
    except OSError as exc:
        raise SnapshotMissing(f"cannot read the snapshot manifest ({exc.strerror})", where=str(path)) from None
    try:
        data = json.loads(raw, parse_float=Decimal)
        manifest = SnapshotManifest.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotTampered(
            f"the snapshot manifest is not one this tool wrote ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="take the snapshot again with --retake (the damaged one is kept aside)",
        ) from None
    manifest = _with(manifest, directory=path.parent, sha256=hashlib.sha256(raw).hexdigest())
    if verify:
        verify_files(manifest)
    return manifest


def verify_files(manifest: SnapshotManifest) -> None:
    """Every file of the manifest matches its recorded size and SHA-256 (else :class:`SnapshotTampered`)."""
    assert manifest.directory is not None
    for record in manifest.files.values():
        target = manifest.directory / record.name
        if not target.is_file():
            raise SnapshotTampered(
                f"snapshot file {record.name} is missing",
                where=str(target),
                fix="take the snapshot again with --retake",
            )
        size = target.stat().st_size
        actual = file_sha256(target) if size == record.bytes else "(size differs)"
        if actual != record.sha256:
            raise SnapshotTampered(
                f"snapshot file {record.name} changed after the snapshot was taken "
                f"({size:,} bytes, SHA-256 {actual[:16]}…; the manifest says {record.bytes:,} bytes, {record.sha256[:16]}…)",
                where=str(target),
                fix="restore the original file, or take the snapshot again with --retake",
            )


def _with(manifest: SnapshotManifest, **changes: Any) -> SnapshotManifest:
    return dataclasses.replace(manifest, **changes)
