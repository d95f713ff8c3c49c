"""Three-way milestone reconciliation: legacy extract ↔ Dataverse ↔ F&O (pure polars, no I/O).

:func:`reconcile_milestones` takes the three sides in the reconciliation contract (see
:mod:`cutover.reconcile.normalise`, whose ``normalise_*`` functions produce it from raw rows)
and joins them on the milestone id as a 128-bit integer. The legacy extract is the truth: it
says which milestones must exist and with which values.

- **missing** — a legacy row whose id is not on a side (``missing_in_dataverse``,
  ``missing_in_fno``: the legacy rows);
- **unexpected** — a milestone of a side whose id is not in the extract but which is *in scope*:
  its contract is one of the extract's contracts (``scope="contract"``, the default: the invoice
  steps bill whole contracts, so a stray milestone there would be invoiced with ours) or its
  line one of the extract's lines (``scope="line"``). Out-of-scope milestones are not ours and
  are not looked at. A row whose id is no GUID joins nothing: it is missing (legacy) or
  unexpected (if in scope);
- **duplicates** — an id on more than one row of a side (``side``, ``milestone_id``,
  ``rows``). Never collapsed: every copy is compared (each pairing that differs is a mismatch
  row) and counted in the control totals;
- **mismatches** — one row per milestone × field that differs: ``contract``, ``line``,
  ``legal_entity``, ``currency``, ``amount``, ``tax``, ``date`` (each side against the
  legacy value, with :class:`Tolerances`), ``invoice_status`` (Dataverse against
  ``expected_invoice_status``) and ``trans_status`` (F&O against ``expected_trans_status``).
  A field a side does not have (F&O's tax; F&O's currency unless its rows carry
  ``CurrencyCode``) is not compared for that side. Values are text so every field fits one
  frame (:data:`MISMATCH_SCHEMA`);
- **control totals** — counts and amount sums per side at four levels (``contract_line``,
  ``contract``, ``legal_entity``, ``currency``), always per currency (amounts in different
  currencies are never added), each side grouped by its *own* values; the legacy side counts
  every row, Dataverse and F&O their rows that match a legacy id or are in scope. An F&O
  frame without ``currency`` totals each row in its line's currency (the extract's, else
  Dataverse's).

Money stays ``Decimal(38, 16)`` throughout; empty inputs give empty findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Literal

import polars as pl

from ..domain import InvoiceStatus, ProjTransStatus
from ..money import MoneyError, parse
from ._frames import (
    MONEY,
    Frame,
    decimal_text,
    key_columns,
    lazy,
    mask,
    money_column,
    money_text,
    signed_money_text,
    with_key,
)
from ._tuples import CODE, encode

__all__ = [
    "CONTROL_TOTAL_SCHEMA",
    "DUPLICATE_SCHEMA",
    "LEVELS",
    "MISMATCH_SCHEMA",
    "MilestoneReconciliation",
    "ReconciliationSummary",
    "Tolerances",
    "reconcile_milestones",
]

SIDES = ("legacy", "dataverse", "fno")
LEVELS: dict[str, tuple[str, ...]] = {
    "contract_line": ("legal_entity", "contract", "line", "currency"),
    "contract": ("legal_entity", "contract", "currency"),
    "legal_entity": ("legal_entity", "currency"),
    "currency": ("currency",),
}
_TEXT_FIELDS = ("contract", "line", "legal_entity", "currency")
_MONEY_FIELDS = ("amount", "tax")
_COMPARED = (*_TEXT_FIELDS, *_MONEY_FIELDS, "date")
# Text is compared and grouped by one exact number per row, its tuple in a dictionary shared by
# the sides (cutover.reconcile._tuples); the text itself is read only for the few rows that
# differ and for the totals' labels.
FIELD_ORDER = (*_COMPARED, "invoice_status", "trans_status")

MISMATCH_SCHEMA: dict[str, pl.DataType] = {
    "milestone_id": pl.String(),
    "legacy_id": pl.String(),
    "field": pl.String(),
    "legacy": pl.String(),
    "dataverse": pl.String(),
    "fno": pl.String(),
    "expected": pl.String(),  # the legacy value; for the two statuses, the expected status
    "dataverse_difference": pl.String(),  # money: dataverse - legacy; date: days; else null
    "fno_difference": pl.String(),
    "tolerance": pl.String(),  # money: amount; date: days; else null (exact)
    "differs": pl.String(),  # "dataverse", "fno" or "dataverse, fno"
}
DUPLICATE_SCHEMA: dict[str, pl.DataType] = {"side": pl.String(), "milestone_id": pl.String(), "rows": pl.UInt32()}
CONTROL_TOTAL_SCHEMA: dict[str, pl.DataType] = {
    "level": pl.String(),
    "legal_entity": pl.String(),
    "contract": pl.String(),
    "line": pl.String(),
    "currency": pl.String(),
    "legacy_count": pl.UInt32(),
    "dataverse_count": pl.UInt32(),
    "fno_count": pl.UInt32(),
    "legacy_amount": MONEY,
    "dataverse_amount": MONEY,
    "fno_amount": MONEY,
    "dataverse_difference": MONEY,  # dataverse_amount - legacy_amount
    "fno_difference": MONEY,
    "ok": pl.Boolean(),
}


def _money_tolerance(name: str, value: object) -> Decimal:
    if isinstance(value, float):
        raise MoneyError(f"tolerance {name}: {value!r} is a binary float; give a Decimal or text")
    amount = value if isinstance(value, Decimal) else parse(str(value))
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"tolerance {name} must be a finite amount of at least 0, not {value!r}")
    return amount


@dataclass(frozen=True)
class Tolerances:
    """How far a side may be from the legacy value and still match. Money in the milestone's
    own currency (Decimal, default zero); dates in whole days (default zero); ``total`` is the
    allowed difference of a control total per group (default zero). Text fields and statuses
    are always exact."""

    amount: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    date: int = 0
    total: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name in ("amount", "tax", "total"):
            object.__setattr__(self, name, _money_tolerance(name, getattr(self, name)))
        if isinstance(self.date, bool) or not isinstance(self.date, int) or self.date < 0:
            raise ValueError(f"tolerance date is a whole number of days of at least 0, not {self.date!r}")

    @classmethod
    def of(cls, value: Tolerances | Mapping[str, object] | None) -> Tolerances:
        """From a mapping (e.g. a ``[tolerances]`` table of ``scope.toml``): ``amount``, ``tax``,
        ``total`` (Decimal or text, never a float) and ``date`` (days). Unknown keys are refused."""
        if value is None:
            return cls()
        if isinstance(value, Tolerances):
            return value
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown tolerance {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReconciliationSummary:
    """Counts of the findings; ``ok`` only when there is none."""

    legacy_rows: int
    dataverse_rows: int  # rows matching a legacy id or in scope
    fno_rows: int
    matched: int  # legacy rows whose id is on both sides
    missing_in_dataverse: int
    missing_in_fno: int
    unexpected_in_dataverse: int
    unexpected_in_fno: int
    duplicates: int  # ids on more than one row of a side (per side)
    mismatched_milestones: int  # distinct ids with at least one mismatch
    mismatches: int  # mismatch rows (id x field)
    control_totals_off: int  # control-total rows not ok, all levels
    ok: bool

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class MilestoneReconciliation:
    """The findings, each a frame (reports, scenarios and screens show the same rows)."""

    missing_in_dataverse: pl.DataFrame  # legacy rows
    missing_in_fno: pl.DataFrame  # legacy rows
    unexpected_in_dataverse: pl.DataFrame  # Dataverse rows (reconciliation contract)
    unexpected_in_fno: pl.DataFrame  # F&O rows
    duplicates: pl.DataFrame  # DUPLICATE_SCHEMA
    mismatches: pl.DataFrame  # MISMATCH_SCHEMA
    control_totals: pl.DataFrame  # CONTROL_TOTAL_SCHEMA
    summary: ReconciliationSummary

    @property
    def ok(self) -> bool:
        return self.summary.ok

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every finding frame by name (for an evidence pack or a screen)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "summary"}


# --- inputs ----------------------------------------------------------------------------------------

_REQUIRED = {
    "legacy": ("milestone_id", "legacy_id", "legal_entity", "contract", "line", "currency", "amount", "date"),
    "dataverse": ("milestone_id", "legal_entity", "contract", "line", "amount"),
    "fno": ("milestone_id", "legal_entity", "contract", "line", "amount"),
}


def _prepare(frame: Frame, side: str) -> tuple[pl.LazyFrame, set[str]]:
    """A side with its key, money widened to Decimal(38, 16) (a float refused), text as
    String; the set of its columns."""
    out = lazy(frame)
    schema = out.collect_schema()
    missing = [n for n in _REQUIRED[side] if n not in schema]
    if missing:
        raise ValueError(f"the {side} milestones have no column {', '.join(missing)} (see cutover.reconcile.normalise)")
    casts = [money_column(out, n, schema, side).alias(n) for n in _MONEY_FIELDS if n in schema]
    casts += [pl.col(n).cast(pl.String) for n in _TEXT_FIELDS if n in schema and schema[n] != pl.String]
    if "date" in schema and schema["date"] != pl.Date:
        casts.append(pl.col("date").cast(pl.Date))
    return with_key(out.with_columns(casts)), set(schema.names())


# A side's text tuple is coded over the text fields it has: all four, or the three but the
# currency (F&O's milestone entity carries none). The extract is coded over all four, and over
# the three when a side needs it.
_FULL = "_text"
_SHORT = "_text3"
_CODE_FIELDS = {_FULL: _TEXT_FIELDS, _SHORT: tuple(f for f in _TEXT_FIELDS if f != "currency")}


def _own_code(columns: set[str]) -> str:
    """The code column a side groups its rows by: over every text field it has."""
    return _FULL if "currency" in columns else _SHORT


def _coded(
    frames: dict[str, pl.DataFrame], side_code: dict[str, str]
) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], int]:
    """Each side's text as one number per row (its tuple in a dictionary shared with the
    extract: equal codes, equal text), in the column :func:`_own_code` names (the extract in
    both when a side needs the shorter one); the dictionaries by code column; and how many
    tuples are the extract's (they come first: codes 0 to n - 1)."""
    frames = dict(frames)
    full_users = ["legacy", *(side for side, c in side_code.items() if c == _FULL)]
    codes, full = encode([frames[u] for u in full_users], _CODE_FIELDS[_FULL])
    coded = [(u, _FULL, c) for u, c in zip(full_users, codes, strict=True)]
    extract_tuples = int(codes[0].max()) + 1 if frames["legacy"].height else 0
    dictionaries = {_FULL: full}
    short_users = [side for side, c in side_code.items() if c == _SHORT]
    if short_users:
        # The extract's shorter tuple follows from its full one: code the dictionary, not the rows.
        (short_of_full,), dictionaries[_SHORT] = encode([full], _CODE_FIELDS[_SHORT])
        coded.append(("legacy", _SHORT, short_of_full.gather(codes[0])))
        codes, dictionaries[_SHORT] = encode(
            [frames[u] for u in short_users], _CODE_FIELDS[_SHORT], dictionaries[_SHORT]
        )
        coded += [(u, _SHORT, c) for u, c in zip(short_users, codes, strict=True)]
    for user, name, code in coded:
        frames[user] = frames[user].with_columns(code.alias(name))
    return frames, dictionaries, extract_tuples


def _status_text(value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return f"{InvoiceStatus(value).label} ({value})"
    except ValueError:
        return str(value)


def _trans_member(value: str | int | ProjTransStatus | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return ProjTransStatus(value).member
    try:
        return ProjTransStatus.from_member(value).member
    except ValueError:
        return str(value)


# --- the comparison --------------------------------------------------------------------------------


def reconcile_milestones(
    legacy: Frame,
    dataverse: Frame,
    fno: Frame,
    *,
    tolerances: Tolerances | Mapping[str, object] | None = None,
    expected_invoice_status: int | None = InvoiceStatus.POSTED,
    expected_trans_status: str | int | None = ProjTransStatus.INVOICED,
    scope: Literal["contract", "line"] = "contract",
) -> MilestoneReconciliation:
    """Reconcile the three sides (frames in the reconciliation contract, eager or lazy).

    ``expected_invoice_status`` is what every Dataverse milestone's ``invoice_status`` must
    be (Customer invoice posted after the invoices are confirmed; Ready for invoicing right
    after the load), ``expected_trans_status`` what every F&O ``trans_status`` must be
    (``Invoiced``); None skips that check."""
    tol = Tolerances.of(tolerances)
    if scope not in ("contract", "line"):
        raise ValueError(f"scope is 'contract' or 'line', not {scope!r}")
    expected_inv = None if expected_invoice_status is None else int(expected_invoice_status)
    expected_trans = _trans_member(expected_trans_status)
    key = key_columns()

    legacy_lf, legacy_cols = _prepare(legacy, "legacy")
    dv_lf, dv_cols = _prepare(dataverse, "dataverse")
    fno_lf, fno_cols = _prepare(fno, "fno")
    cols = {"legacy": legacy_cols, "dataverse": dv_cols, "fno": fno_cols}
    side_code = {side: _own_code(cols[side]) for side in ("dataverse", "fno")}

    # Each side is read, keyed and coded once, here: everything below uses these frames
    # several times, and a lazy plan would compute them again for each use.
    legacy_df, dv_df, fno_df = pl.collect_all([f.with_row_index("_row") for f in (legacy_lf, dv_lf, fno_lf)])
    frames, dictionaries, extract_tuples = _coded({"legacy": legacy_df, "dataverse": dv_df, "fno": fno_df}, side_code)
    legacy_df, dv_df, fno_df = frames["legacy"], frames["dataverse"], frames["fno"]
    legacy_lf = legacy_df.lazy()
    # Every id match is found on the ids sorted once per side, so each join below merges two
    # sorted columns instead of hashing a million keys; values are then fetched by row number.
    legacy_ids, dv_ids, fno_ids = pl.collect_all([_sorted_ids(f, key) for f in (legacy_df, dv_df, fno_df)])
    dv_pairs, fno_pairs = pl.collect_all([_pairs(legacy_ids, ids, key) for ids in (dv_ids, fno_ids)])

    # A milestone is in scope when its contract (or line) is one of the extract's: decided
    # once per distinct text tuple, then looked up by code.
    scope_values = dictionaries[_FULL].head(extract_tuples)[scope].drop_nulls().unique().implode()

    def flagged(frame: pl.DataFrame, pairs: pl.DataFrame, side: str) -> pl.DataFrame:
        code = side_code[side]
        in_scope = dictionaries[code].select(pl.col(scope).is_in(scope_values).fill_null(False)).to_series()
        return frame.with_columns(
            mask(frame.height, pairs["_row"]).alias("_known"), in_scope.gather(frame[code]).alias("_scope")
        )

    dv_flagged, fno_flagged = flagged(dv_df, dv_pairs, "dataverse"), flagged(fno_df, fno_pairs, "fno")
    relevant = pl.col("_known") | pl.col("_scope")
    internal = [*key, "_known", "_scope", "_row", *_CODE_FIELDS]

    def public(frame: pl.LazyFrame) -> pl.LazyFrame:
        names = frame.collect_schema().names()
        return _as_text(frame.drop([n for n in internal if n in names]))

    on_dv, on_fno = mask(legacy_df.height, dv_pairs["_lrow"]), mask(legacy_df.height, fno_pairs["_lrow"])
    legacy_order = ["legacy_id", "milestone_id"]
    missing_dv = public(legacy_lf.filter(~on_dv)).sort(legacy_order, nulls_last=True)
    missing_fno = public(legacy_lf.filter(~on_fno)).sort(legacy_order, nulls_last=True)
    side_order = ["contract", "line", "milestone_id"]
    unexpected_dv = public(dv_flagged.lazy().filter(~pl.col("_known") & pl.col("_scope"))).sort(
        side_order, nulls_last=True
    )
    unexpected_fno = public(fno_flagged.lazy().filter(~pl.col("_known") & pl.col("_scope"))).sort(
        side_order, nulls_last=True
    )
    duplicates = pl.concat(
        [
            _duplicates(legacy_ids, legacy_df, "legacy", key),
            _duplicates(dv_ids, dv_flagged, "dataverse", key),
            _duplicates(fno_ids, fno_flagged, "fno", key),
        ]
    )

    # Compare each side with the extract on its own (text by code); only the few legacy rows
    # that differ somewhere are then joined three ways, on their text, for the report.
    flags = _flags(cols, tol, expected_inv, expected_trans)
    suspects = [
        _pair_values(
            legacy_df,
            frame,
            pairs,
            side,
            cols,
            side_code[side],
            _status_bad(side, cols[side], expected_inv, expected_trans),
        )
        .filter(pl.any_horizontal(side_flags))
        .select("_row")
        for side, frame, pairs in (("dataverse", dv_df, dv_pairs), ("fno", fno_df, fno_pairs))
        if (side_flags := _coded_flags(flags, side))
    ] or [legacy_lf.select("_row").clear()]
    per_line = {
        "legacy": _per_line(legacy_lf, "legacy", _FULL, dictionaries[_FULL]),
        **{
            side: _per_line(frame.lazy().filter(relevant), side, side_code[side], dictionaries[side_code[side]])
            for side, frame in (("dataverse", dv_flagged), ("fno", fno_flagged))
        },
    }
    line_totals = _line_totals(per_line)

    (
        missing_dv_df,
        missing_fno_df,
        unexpected_dv_df,
        unexpected_fno_df,
        duplicates_df,
        suspects_df,
        lines_df,
    ) = pl.collect_all(
        [
            missing_dv,
            missing_fno,
            unexpected_dv,
            unexpected_fno,
            duplicates,
            pl.concat(suspects).unique(),
            line_totals,
        ]
    )
    # Rolled up from the line totals once they are known (a plan would compute them per level).
    totals = _control_totals(lines_df.lazy(), tol.total).collect()
    differing_df = _differing(legacy_df, dv_df, fno_df, suspects_df["_row"], cols, key, flags)
    duplicates_df = duplicates_df.sort(
        pl.col("side").replace_strict({s: i for i, s in enumerate(SIDES)}, return_dtype=pl.Int8), "milestone_id"
    )
    mismatches = _mismatch_rows(differing_df, cols, tol, expected_inv, expected_trans)
    off = int((~totals["ok"]).sum()) if totals.height else 0
    summary = ReconciliationSummary(
        legacy_rows=legacy_df.height,
        dataverse_rows=int(dv_flagged.select(relevant.sum()).item()),
        fno_rows=int(fno_flagged.select(relevant.sum()).item()),
        matched=int((on_dv & on_fno).sum()),
        missing_in_dataverse=missing_dv_df.height,
        missing_in_fno=missing_fno_df.height,
        unexpected_in_dataverse=unexpected_dv_df.height,
        unexpected_in_fno=unexpected_fno_df.height,
        duplicates=duplicates_df.height,
        mismatched_milestones=mismatches["milestone_id"].n_unique() if mismatches.height else 0,
        mismatches=mismatches.height,
        control_totals_off=off,
        ok=not (
            missing_dv_df.height
            or missing_fno_df.height
            or unexpected_dv_df.height
            or unexpected_fno_df.height
            or duplicates_df.height
            or mismatches.height
            or off
        ),
    )
    return MilestoneReconciliation(
        missing_in_dataverse=missing_dv_df,
        missing_in_fno=missing_fno_df,
        unexpected_in_dataverse=unexpected_dv_df,
        unexpected_in_fno=unexpected_fno_df,
        duplicates=duplicates_df,
        mismatches=mismatches,
        control_totals=totals,
        summary=summary,
    )


def _as_text(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` with its Categorical columns as String (as every finding frame holds text)."""
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def _sorted_ids(frame: pl.DataFrame, key: list[str]) -> pl.LazyFrame:
    """The key and row number of every row with a key, sorted by key (ties in row order)."""
    return frame.lazy().select(*key, "_row").drop_nulls(key).sort(key, maintain_order=True)


def _pairs(legacy_ids: pl.DataFrame, ids: pl.DataFrame, key: list[str]) -> pl.LazyFrame:
    """Every (side row ``_row``, legacy row ``_lrow``) with the same id: a merge of two sorted
    key columns (every pairing when an id repeats on either side), in legacy row order (so the
    extract's values are then read front to back)."""
    return (
        ids.lazy()
        .join(legacy_ids.lazy().rename({"_row": "_lrow"}), on=key, how="inner")
        .select("_row", "_lrow")
        .sort("_lrow", maintain_order=True)
    )


def _duplicates(ids: pl.DataFrame, frame: pl.DataFrame, side: str, key: list[str]) -> pl.LazyFrame:
    """Ids on more than one row (of the rows ``frame`` counts: for Dataverse and F&O those
    known or in scope), found as equal neighbours in the sorted ids, then counted."""
    if "_known" in frame.columns:
        relevant = (frame["_known"] | frame["_scope"]).gather(ids["_row"])
        ids = ids.filter(relevant)
    same_as = [pl.all_horizontal([pl.col(k) == pl.col(k).shift(n) for k in key]).fill_null(False) for n in (1, -1)]
    repeated = ids.filter(same_as[0] | same_as[1])
    return (
        repeated.lazy()
        .with_columns(frame["milestone_id"].gather(repeated["_row"]).alias("milestone_id"))
        .group_by(key)
        .agg(pl.col("milestone_id").min(), pl.len().cast(pl.UInt32).alias("rows"))
        .select(pl.lit(side).alias("side"), "milestone_id", "rows")
    )


_SUFFIX = {"legacy": "l", "dataverse": "d", "fno": "f"}


def _side_columns(side: str, cols: set[str], text: bool = True) -> list[pl.Expr]:
    """The compared fields of a side, suffixed (``amount__d``); a field it lacks is null.
    Without ``text``, the fields but the four text ones (which pairs compare by code)."""
    s = _SUFFIX[side]
    wanted: list[tuple[str, pl.DataType]] = [(f, pl.String()) for f in _TEXT_FIELDS] if text else []
    wanted += [(f, MONEY) for f in _MONEY_FIELDS] + [("date", pl.Date())]
    if side == "dataverse":
        wanted.append(("invoice_status", pl.Int64()))
    if side == "fno":
        wanted.append(("trans_status", pl.String()))
    return [(pl.col(f).cast(t) if f in cols else pl.lit(None, t)).alias(f"{f}__{s}") for f, t in wanted]


def _side_frame(frame: pl.LazyFrame, side: str, cols: dict[str, set[str]], key: list[str]) -> pl.LazyFrame:
    """The key and compared fields of a side, suffixed; Dataverse and F&O with a presence flag."""
    if side == "legacy":
        return frame.select("_row", *key, *_side_columns(side, cols[side]))
    return frame.drop_nulls(key).select(*key, *_side_columns(side, cols[side]), pl.lit(True).alias(f"__{side}"))


def _pair_values(
    legacy: pl.DataFrame,
    frame: pl.DataFrame,
    pairs: pl.DataFrame,
    side: str,
    cols: dict[str, set[str]],
    code: str,
    status_bad: pl.Expr | None,
) -> pl.LazyFrame:
    """The compared fields of each pairing, side by side (legacy ``__l``, the side suffixed;
    the text as the two codes ``_text__l`` and ``_text__<side>``; the side's status as
    ``_status_bad__<side>``, judged before the rows are fetched), fetched by row number;
    ``_row`` is the legacy row."""
    s = _SUFFIX[side]
    legacy_values = legacy.select(pl.col(code).alias("_text__l"), *_side_columns("legacy", cols["legacy"], text=False))
    values = frame.select(
        pl.col(code).alias(f"_text__{s}"),
        *(e for e in _side_columns(side, cols[side], text=False) if e.meta.output_name() not in _STATUS_COLUMNS),
        (pl.lit(False) if status_bad is None else status_bad).alias(f"_status_bad__{s}"),
        pl.lit(True).alias(f"__{side}"),
    )
    return pl.concat(
        [
            legacy_values.select(pl.all().gather(pairs["_lrow"])),
            values.select(pl.all().gather(pairs["_row"])),
            pairs.select(pl.col("_lrow").alias("_row")),
        ],
        how="horizontal",
    ).lazy()


_STATUS_COLUMNS = ("invoice_status__d", "trans_status__f")


def _status_bad(
    side: str, cols: set[str], expected_inv: int | None, expected_trans: str | None, suffix: str = ""
) -> pl.Expr | None:
    """A side row's status is not the expected one (its column named with ``suffix``); None
    when the side's status is not checked."""
    if side == "dataverse" and expected_inv is not None and "invoice_status" in cols:
        return pl.col(f"invoice_status{suffix}").cast(pl.Int64()).ne_missing(expected_inv)
    if side == "fno" and expected_trans is not None and "trans_status" in cols:
        return pl.col(f"trans_status{suffix}").cast(pl.String()).ne_missing(pl.lit(expected_trans))
    return None


def _coded_flags(flags: dict[str, pl.Expr], side: str) -> list[pl.Expr]:
    """A side's flags over :func:`_pair_values`: its text flags replaced by one comparison of
    the text codes, its status flag by the status judged before the fetch."""
    s = _SUFFIX[side]
    mine = {n.removeprefix("__x_").removesuffix(f"__{s}"): e for n, e in flags.items() if n.endswith(f"__{s}")}
    out = [e for field, e in mine.items() if field not in (*_TEXT_FIELDS, "invoice_status", "trans_status")]
    present = pl.col(f"__{side}")
    if any(field in _TEXT_FIELDS for field in mine):
        out.append(present & (pl.col("_text__l") != pl.col(f"_text__{s}")))
    if "invoice_status" in mine or "trans_status" in mine:
        out.append(present & pl.col(f"_status_bad__{s}"))
    return out


def _differing(
    legacy: pl.DataFrame,
    dv: pl.DataFrame,
    fno: pl.DataFrame,
    rows: pl.Series,
    cols: dict[str, set[str]],
    key: list[str],
    flags: dict[str, pl.Expr],
) -> pl.DataFrame:
    """The legacy rows at ``rows`` with their Dataverse and F&O rows (every pairing when an id
    repeats) and the flags, keeping the pairings that differ somewhere."""
    some = legacy.select(pl.all().gather(rows.sort()))  # "_row" is the row's position
    keys = some.select(key).unique()
    left = _side_frame(some.lazy(), "legacy", cols, key).join(
        some.lazy().select("_row", "milestone_id", "legacy_id"), on="_row", how="left"
    )
    joined = left
    for side, frame in (("dataverse", dv), ("fno", fno)):
        right = _side_frame(frame.lazy().join(keys.lazy(), on=key, how="semi"), side, cols, key)
        joined = joined.join(right, on=key, how="left").with_columns(pl.col(f"__{side}").fill_null(False))
    if not flags:
        return joined.clear().collect()
    return joined.with_columns(**flags).filter(pl.any_horizontal(list(flags))).collect()


def _compared(field: str, side: str, cols: dict[str, set[str]]) -> bool:
    return field in cols[side] and field in cols["legacy"]


def _flags(
    cols: dict[str, set[str]], tol: Tolerances, expected_inv: int | None, expected_trans: str | None
) -> dict[str, pl.Expr]:
    """One boolean column per (field, side) that can differ: ``__x_amount__d`` etc."""
    out: dict[str, pl.Expr] = {}
    for side in ("dataverse", "fno"):
        s = _SUFFIX[side]
        present = pl.col(f"__{side}")
        for field in _COMPARED:
            if not _compared(field, side, cols):
                continue
            a, b = pl.col(f"{field}__l"), pl.col(f"{field}__{s}")
            if field in _MONEY_FIELDS:
                bad = (a.is_null() != b.is_null()) | ((b - a).abs() > pl.lit(getattr(tol, field), MONEY))
            elif field == "date":
                bad = (a.is_null() != b.is_null()) | ((b - a).dt.total_days().abs() > tol.date)
            else:
                bad = a.ne_missing(b)
            out[f"__x_{field}__{s}"] = (present & bad).fill_null(False)
    for side, field in (("dataverse", "invoice_status"), ("fno", "trans_status")):
        s = _SUFFIX[side]
        if (bad := _status_bad(side, cols[side], expected_inv, expected_trans, suffix=f"__{s}")) is not None:
            out[f"__x_{field}__{s}"] = pl.col(f"__{side}") & bad
    return out


def _value_text(field: str, expr: pl.Expr) -> pl.Expr:
    if field in _MONEY_FIELDS:
        return money_text(expr)
    if field == "date":
        return expr.dt.to_string("%Y-%m-%d")
    if field == "invoice_status":
        labels = {int(s): f"{s.label} ({int(s)})" for s in InvoiceStatus}
        return expr.replace_strict(labels, default=expr.cast(pl.String), return_dtype=pl.String)
    return expr.cast(pl.String)


def _difference(field: str, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    if field in _MONEY_FIELDS:
        return signed_money_text(b - a)
    if field == "date":
        days = (b - a).dt.total_days()
        return pl.when(days > 0).then(pl.lit("+") + days.cast(pl.String)).otherwise(days.cast(pl.String))
    return pl.lit(None, pl.String)


def _mismatch_rows(
    differing: pl.DataFrame,
    cols: dict[str, set[str]],
    tol: Tolerances,
    expected_inv: int | None,
    expected_trans: str | None,
) -> pl.DataFrame:
    """The differing joined rows as one row per (milestone, field), values as text."""
    if not differing.height:
        return pl.DataFrame(schema=MISMATCH_SCHEMA)
    parts = []
    none = pl.lit(None, pl.String)
    for field in FIELD_ORDER:
        flag_d, flag_f = f"__x_{field}__d", f"__x_{field}__f"
        fd = pl.col(flag_d) if flag_d in differing.columns else pl.lit(False)
        ff = pl.col(flag_f) if flag_f in differing.columns else pl.lit(False)
        if flag_d not in differing.columns and flag_f not in differing.columns:
            continue
        if field == "invoice_status":
            legacy = none
            dv = _value_text(field, pl.col("invoice_status__d"))
            fno = none
            expected = pl.lit(_status_text(expected_inv), pl.String)
            dv_diff = fno_diff = tolerance = none
        elif field == "trans_status":
            legacy = dv = none
            fno = pl.col("trans_status__f")
            expected = pl.lit(expected_trans, pl.String)
            dv_diff = fno_diff = tolerance = none
        else:
            a = pl.col(f"{field}__l")
            legacy = expected = _value_text(field, a)
            dv = _value_text(field, pl.col(f"{field}__d")) if _compared(field, "dataverse", cols) else none
            fno = _value_text(field, pl.col(f"{field}__f")) if _compared(field, "fno", cols) else none
            dv_diff = (
                pl.when(pl.col("__dataverse")).then(_difference(field, a, pl.col(f"{field}__d")))
                if _compared(field, "dataverse", cols)
                else none
            )
            fno_diff = (
                pl.when(pl.col("__fno")).then(_difference(field, a, pl.col(f"{field}__f")))
                if _compared(field, "fno", cols)
                else none
            )
            if field in _MONEY_FIELDS:
                tolerance = pl.lit(decimal_text(getattr(tol, field)))
            elif field == "date":
                tolerance = pl.lit(str(tol.date))
            else:
                tolerance = none
        differs = pl.concat_list(
            pl.when(fd).then(pl.lit("dataverse")).otherwise(none), pl.when(ff).then(pl.lit("fno")).otherwise(none)
        ).list.drop_nulls()
        parts.append(
            differing.lazy()
            .filter(fd | ff)
            .select(
                "milestone_id",
                "legacy_id",
                pl.lit(field).alias("field"),
                legacy.alias("legacy"),
                dv.alias("dataverse"),
                fno.alias("fno"),
                expected.alias("expected"),
                dv_diff.alias("dataverse_difference"),
                fno_diff.alias("fno_difference"),
                tolerance.alias("tolerance"),
                differs.list.join(", ").alias("differs"),
                pl.lit(FIELD_ORDER.index(field)).alias("_order"),
            )
        )
    out = pl.concat(parts).collect()
    return (
        out.sort(["legacy_id", "milestone_id", "_order", "dataverse", "fno"], nulls_last=True)
        .drop("_order")
        .cast(MISMATCH_SCHEMA)  # type: ignore[arg-type]
    )


# --- control totals --------------------------------------------------------------------------------


def _per_line(frame: pl.LazyFrame, side: str, code: str, dictionary: pl.DataFrame) -> pl.LazyFrame:
    """Count and sum of a side's rows per text tuple (its code), with the tuple's text."""
    return (
        frame.group_by(code)
        .agg(
            pl.len().cast(pl.UInt32).alias(f"{side}_count"), pl.col("amount").sum().cast(MONEY).alias(f"{side}_amount")
        )
        .join(dictionary.lazy().with_row_index(code).with_columns(pl.col(code).cast(CODE)), on=code, how="left")
        .drop(code)
    )


def _line_totals(per_line: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Counts and sums per (legal entity, contract, line, currency), one column pair per side,
    every side grouped by its own values (``per_line``: each side's :func:`_per_line`)."""
    keys = list(LEVELS["contract_line"])
    totals = dict(per_line)
    if "currency" not in totals["dataverse"].collect_schema():
        totals["dataverse"] = totals["dataverse"].with_columns(pl.lit(None, pl.String).alias("currency"))
    if "currency" not in totals["fno"].collect_schema():
        # F&O's milestone entity has no currency: the line's, as the extract (else Dataverse) has it
        line_currency = (
            pl.concat(
                [
                    totals["legacy"].select("line", "currency", pl.lit(0).alias("_p")),
                    totals["dataverse"].select("line", "currency", pl.lit(1).alias("_p")),
                ]
            )
            .drop_nulls()
            .sort("_p")
            .unique("line", keep="first")
            .select("line", "currency")
        )
        totals["fno"] = totals["fno"].join(line_currency, on="line", how="left")
    joined = totals["legacy"]
    for side in ("dataverse", "fno"):
        joined = joined.join(totals[side], on=keys, how="full", coalesce=True, nulls_equal=True)
    return joined.with_columns(
        *(pl.col(f"{s}_count").fill_null(0) for s in SIDES),
        *(pl.col(f"{s}_amount").fill_null(pl.lit(0, MONEY)) for s in SIDES),
    )


def _control_totals(lines: pl.LazyFrame, total_tolerance: Decimal) -> pl.LazyFrame:
    tol = pl.lit(total_tolerance, MONEY)
    parts = []
    for level, keys in LEVELS.items():
        rolled = lines.group_by(list(keys)).agg(
            *(pl.col(f"{s}_count").sum().cast(pl.UInt32) for s in SIDES),
            *(pl.col(f"{s}_amount").sum().cast(MONEY) for s in SIDES),
        )
        parts.append(
            _as_text(rolled).with_columns(
                pl.lit(level).alias("level"),
                *(pl.lit(None, pl.String).alias(k) for k in LEVELS["contract_line"] if k not in keys),
            )
        )
    out = pl.concat(parts, how="diagonal").with_columns(
        (pl.col("dataverse_amount") - pl.col("legacy_amount")).cast(MONEY).alias("dataverse_difference"),
        (pl.col("fno_amount") - pl.col("legacy_amount")).cast(MONEY).alias("fno_difference"),
    )
    out = out.with_columns(
        (
            (pl.col("legacy_count") == pl.col("dataverse_count"))
            & (pl.col("legacy_count") == pl.col("fno_count"))
            & (pl.col("dataverse_difference").abs() <= tol)
            & (pl.col("fno_difference").abs() <= tol)
        ).alias("ok")
    )
    order = pl.col("level").replace_strict({name: i for i, name in enumerate(LEVELS)}, return_dtype=pl.Int8)
    return (
        out.sort(order, "legal_entity", "contract", "line", "currency", nulls_last=True)
        .select(list(CONTROL_TOTAL_SCHEMA))
        .cast(CONTROL_TOTAL_SCHEMA)  # type: ignore[arg-type]
    )
