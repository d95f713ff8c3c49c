"""Reconciliation of 1,000,000 milestones three ways plus two 1,000,000-line GL snapshots.

Targets (issue #11 item 1): reconciliation + balance comparison from Parquet in at most 2 s,
peak RSS at most 1.5 GB.

The data is generated once under ``.bench/reconcile/`` (``--regenerate`` to redo it):

- ``legacy.parquet`` — the validated extract (VALID_SCHEMA subset with the Dataverse ids);
- ``dataverse.parquet`` — the milestones as the Web API answers them (``msdyn_*`` fields,
  lookup GUIDs, money as Decimal, the date as text);
- ``fno.parquet`` — ``ProjectContractLineMilestones`` (``ContractLineMilestoneGuid``,
  ``TransStatus`` member names, ``TransactionDate`` as ISO date-time text);
- ``ar_before/after.parquet`` (200,000 rows) and ``gl_before/after.parquet`` (1,000,000 lines),
  in the columns :mod:`cutover.snapshot` writes;

with a sprinkling of findings: amounts, taxes and dates that differ, milestones missing on
either side, unexpected ones in scope, duplicated F&O rows, wrong statuses, changed GL lines and
new vouchers. The timed run happens in a fresh child process (so its peak RSS is the
reconciliation's, not the generator's): scans of the files → ``normalise_*`` collected (as the
verification suite does) → ``reconcile_milestones`` → ``compare_balances``, each stage timed. Peak RSS is the kernel's high-water mark
(``ru_maxrss``) of that child.

``--datacompy`` also compares the legacy ↔ Dataverse pair with datacompy's polars comparison as
a reference. datacompy pins an older polars, so it runs in its own virtual environment, which
this script never creates: it prints the commands, and runs
``benchmarks/bench_reconcile_datacompy.py`` inside it when it exists, then checks that
datacompy's counts (rows only on one side, mismatched values per column) equal ours.

    python benchmarks/bench_reconcile.py [--milestones 1000000] [--gl-lines 1000000] [--repeat 3] [--regenerate] [--datacompy]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
BENCH_DIR = Path(os.environ.get("CUTOVER_BENCH_DIR", HERE.parent / ".bench"))
DATA = BENCH_DIR / "reconcile"
VENV = BENCH_DIR / "datacompy-venv"
NS = uuid.UUID("7d9e7f40-52a4-4a55-9a0e-0c1f3b7a2e61")
LEGAL_ENTITIES = (("USMF", "USD"), ("DEMF", "EUR"), ("GBSI", "GBP"))
LINES_PER_CONTRACT = 5
MILESTONES_PER_LINE = 10


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, polars {pl.__version__}, {time.strftime('%Y-%m-%d')}"


# --- generation ------------------------------------------------------------------------------------


def _rand(n_expr: pl.Expr, seed: int, modulo: int) -> pl.Expr:
    return (n_expr.hash(seed) % modulo).cast(pl.Int64)


def _cents_text(cents: pl.Expr) -> pl.Expr:
    return pl.concat_str([(cents // 100).cast(pl.String), pl.lit("."), (cents % 100).cast(pl.String).str.zfill(2)])


def _every(i: pl.Expr, step: int, offset: int) -> pl.Expr:
    return (i % step) == offset


def generate(milestones: int, gl_lines: int, ar_rows: int) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n_lines = -(-milestones // MILESTONES_PER_LINE)
    n_contracts = -(-n_lines // LINES_PER_CONTRACT)
    contracts = [f"PRJC-{c:07d}" for c in range(1, n_contracts + 1)]
    reference = pl.DataFrame(
        {
            "contract_number": contracts,
            "contract_id": [str(uuid.uuid5(NS, c)) for c in contracts],
            "le_index": [c % len(LEGAL_ENTITIES) for c in range(n_contracts)],
        }
    ).with_columns(
        pl.col("le_index").replace_strict({i: le for i, (le, _) in enumerate(LEGAL_ENTITIES)}).alias("legal_entity"),
        pl.col("le_index").replace_strict({i: cur for i, (_, cur) in enumerate(LEGAL_ENTITIES)}).alias("currency"),
    )
    currency_ids = {cur: str(uuid.uuid5(NS, cur)) for _, cur in LEGAL_ENTITIES}
    line_names = [f"{c}-{n}" for c in contracts for n in range(1, LINES_PER_CONTRACT + 1)][:n_lines]
    line_ids = pl.DataFrame({"line_key": line_names, "line_id": [str(uuid.uuid5(NS, k)) for k in line_names]})
    legacy_ids = [f"LEG-{i:08d}" for i in range(milestones)]
    milestone_ids = [str(uuid.uuid5(NS, k)) for k in legacy_ids]
    i = pl.int_range(pl.len(), dtype=pl.Int64)
    base = (
        pl.DataFrame({"legacy_id": legacy_ids, "milestone_id": milestone_ids})
        .with_columns(
            (i // MILESTONES_PER_LINE).alias("_line"),
            _rand(i, 1, 5_000_000).alias("_cents"),
            _rand(i, 2, 730).alias("_day"),
        )
        .with_columns(
            (pl.col("_line") // LINES_PER_CONTRACT).alias("_contract"),
            (pl.col("_line") % LINES_PER_CONTRACT + 1).alias("contract_line"),
        )
        .with_columns(pl.col("_contract").replace_strict(dict(enumerate(contracts))).alias("contract_number"))
        .join(reference, on="contract_number", how="left")
        .with_columns(
            (pl.col("contract_number") + "-" + pl.col("contract_line").cast(pl.String)).alias("line_key"),
            pl.col("currency").replace_strict(currency_ids).alias("currency_id"),
            _cents_text(pl.col("_cents")).cast(pl.Decimal(38, 4)).alias("amount"),
            _cents_text(pl.col("_cents") // 10).cast(pl.Decimal(38, 4)).alias("tax_amount"),
            (pl.lit(dt.date(2023, 1, 1)) + pl.duration(days=pl.col("_day"))).alias("milestone_date"),
        )
        .join(line_ids, on="line_key", how="left")
        .with_columns(i.alias("_i"))
    )
    legacy = base.select(
        "legacy_id",
        "milestone_id",
        "legal_entity",
        "contract_number",
        "contract_id",
        "contract_line",
        "line_id",
        "currency",
        "currency_id",
        "amount",
        "tax_amount",
        "milestone_date",
    )
    legacy.write_parquet(DATA / "legacy.parquet")

    k = pl.col("_i")
    dv = base.filter(~_every(k, 2000, 7)).select(  # 0.05 % missing in Dataverse
        pl.col("milestone_id").alias("msdyn_contractlinescheduleofvalueid"),
        pl.when(_every(k, 1000, 3))
        .then(pl.col("amount") + pl.lit(1, pl.Decimal(38, 4)))
        .otherwise("amount")
        .alias("msdyn_amount"),
        pl.when(_every(k, 5000, 11)).then(pl.lit(0, pl.Decimal(38, 4))).otherwise("tax_amount").alias("msdyn_tax"),
        pl.when(_every(k, 4000, 5))
        .then(pl.col("milestone_date") + pl.duration(days=1))
        .otherwise("milestone_date")
        .dt.to_string("%Y-%m-%d")
        .alias("msdyn_invoicedate"),
        pl.when(_every(k, 10000, 13)).then(192350001).otherwise(192350003).cast(pl.Int64).alias("msdyn_invoicestatus"),
        pl.col("contract_id").alias("_msdyn_contract_value"),
        pl.col("line_id").alias("_msdyn_contractlineid_value"),
        pl.col("currency_id").alias("_transactioncurrencyid_value"),
    )
    extra = max(1, milestones // 10000)  # unexpected milestones on extract contracts
    stray = base.head(extra).select(
        pl.col("legacy_id")
        .map_elements(lambda s: str(uuid.uuid5(NS, "stray-" + s)), return_dtype=pl.String)
        .alias("milestone_id"),
        "contract_id",
        "line_id",
        "currency_id",
        "amount",
        "tax_amount",
        "milestone_date",
        "legal_entity",
        "contract_number",
        "line_key",
    )
    dv = pl.concat(
        [
            dv,
            stray.select(
                pl.col("milestone_id").alias("msdyn_contractlinescheduleofvalueid"),
                pl.col("amount").alias("msdyn_amount"),
                pl.col("tax_amount").alias("msdyn_tax"),
                pl.col("milestone_date").dt.to_string("%Y-%m-%d").alias("msdyn_invoicedate"),
                pl.lit(192350001, pl.Int64).alias("msdyn_invoicestatus"),
                pl.col("contract_id").alias("_msdyn_contract_value"),
                pl.col("line_id").alias("_msdyn_contractlineid_value"),
                pl.col("currency_id").alias("_transactioncurrencyid_value"),
            ),
        ]
    )
    dv.sample(fraction=1.0, shuffle=True, seed=5).write_parquet(DATA / "dataverse.parquet")

    fno_rows = base.filter(~_every(k, 2000, 9)).select(  # 0.05 % missing in F&O
        pl.col("legal_entity").str.to_lowercase().alias("dataAreaId"),
        pl.format("CLM-{}", pl.col("_i")).alias("ContractLineMilestoneIdentifier"),
        pl.col("milestone_id").alias("ContractLineMilestoneGuid"),
        pl.col("contract_number").alias("ProjectContractId"),
        pl.col("line_key").alias("ContractLineId"),
        pl.when(_every(k, 3000, 17))
        .then(pl.col("amount") - pl.lit("0.01").cast(pl.Decimal(38, 4)))
        .otherwise("amount")
        .cast(pl.Decimal(38, 16))
        .alias("Amount"),
        pl.concat_str([pl.col("milestone_date").dt.to_string("%Y-%m-%d"), pl.lit("T12:00:00Z")]).alias(
            "TransactionDate"
        ),
        pl.when(_every(k, 7000, 19)).then(pl.lit("Registered")).otherwise(pl.lit("Invoiced")).alias("TransStatus"),
    )
    duplicated = fno_rows.filter(_every(pl.int_range(pl.len()), 20000, 23)).with_columns(
        (pl.col("ContractLineMilestoneIdentifier") + "-DUP").alias("ContractLineMilestoneIdentifier")
    )
    stray_fno = stray.select(
        pl.col("legal_entity").str.to_lowercase().alias("dataAreaId"),
        pl.format("CLM-S{}", pl.int_range(pl.len())).alias("ContractLineMilestoneIdentifier"),
        pl.col("milestone_id").alias("ContractLineMilestoneGuid"),
        pl.col("contract_number").alias("ProjectContractId"),
        pl.col("line_key").alias("ContractLineId"),
        pl.col("amount").cast(pl.Decimal(38, 16)).alias("Amount"),
        pl.concat_str([pl.col("milestone_date").dt.to_string("%Y-%m-%d"), pl.lit("T12:00:00Z")]).alias(
            "TransactionDate"
        ),
        pl.lit("Registered").alias("TransStatus"),
    )
    pl.concat([fno_rows, duplicated, stray_fno]).sample(fraction=1.0, shuffle=True, seed=6).write_parquet(
        DATA / "fno.parquet"
    )
    del base, legacy, dv, fno_rows

    _generate_gl(gl_lines)
    _generate_ar(ar_rows)
    print(
        f"generated {milestones:,} milestones, {gl_lines:,} GL lines, {ar_rows:,} AR rows in {time.perf_counter() - started:.1f} s"
    )


def _generate_gl(lines: int) -> None:
    money = pl.Decimal(38, 16)
    i = pl.int_range(lines, dtype=pl.Int64, eager=True)
    entry = i // 2  # balanced two-line entries
    frame = pl.DataFrame({"SourceKey": i + 1, "GeneralJournalEntry": entry + 1}).with_columns(
        pl.col("GeneralJournalEntry")
        .mod(len(LEGAL_ENTITIES))
        .replace_strict({n: le for n, (le, _) in enumerate(LEGAL_ENTITIES)})
        .alias("legal_entity"),
        (pl.lit(dt.date(2022, 1, 1)) + pl.duration(days=_rand(pl.col("GeneralJournalEntry"), 3, 900)))
        .dt.to_string("%Y-%m-%d")
        .alias("AccountingDate"),
        pl.format("GNJL{}", pl.col("GeneralJournalEntry")).alias("SubledgerVoucher"),
        pl.format("JN{}", pl.col("GeneralJournalEntry") // 50).alias("JournalNumber"),
        (pl.lit(110000) + _rand(pl.col("SourceKey"), 4, 400) * 100).cast(pl.String).alias("MainAccount"),
        _rand(pl.col("GeneralJournalEntry"), 5, 10_000_000).alias("_cents"),
        pl.lit("").alias("LedgerAccount"),
        pl.lit(None, money).alias("TransactionCurrencyAmount"),
        pl.lit(None, pl.String).alias("TransactionCurrencyCode"),
        pl.lit("bench").alias("Text"),
    )
    frame = frame.with_columns(
        pl.when(pl.col("SourceKey") % 2 == 1)
        .then(_cents_text(pl.col("_cents")))
        .otherwise(pl.lit("-") + _cents_text(pl.col("_cents")))
        .cast(money)
        .alias("AccountingCurrencyAmount"),
        (pl.col("MainAccount") + "-001-022").alias("LedgerAccount"),
    ).drop("_cents")
    frame.write_parquet(DATA / "gl_before.parquet")
    changed = pl.col("SourceKey") % 50_000 == 7  # a few lines moved
    after = frame.with_columns(
        pl.when(changed)
        .then(pl.col("AccountingCurrencyAmount") + pl.lit(1, money))
        .otherwise("AccountingCurrencyAmount")
        .alias("AccountingCurrencyAmount")
    )
    new = frame.head(20).with_columns(  # ten new vouchers (two lines each)
        (pl.col("SourceKey") + lines).alias("SourceKey"),
        (pl.col("GeneralJournalEntry") + lines).alias("GeneralJournalEntry"),
        (pl.col("SubledgerVoucher") + "-NEW").alias("SubledgerVoucher"),
    )
    pl.concat([after.sample(fraction=1.0, shuffle=True, seed=7), new]).write_parquet(DATA / "gl_after.parquet")


def _generate_ar(rows: int) -> None:
    money = pl.Decimal(38, 16)
    i = pl.int_range(rows, dtype=pl.Int64, eager=True)
    frame = (
        pl.DataFrame({"RecId": i + 1})
        .with_columns(
            (pl.col("RecId") % len(LEGAL_ENTITIES)).alias("_le"),
            _rand(pl.col("RecId"), 6, 5_000_000).alias("_cents"),
        )
        .with_columns(
            pl.col("_le").replace_strict({n: le for n, (le, _) in enumerate(LEGAL_ENTITIES)}).alias("legal_entity"),
            pl.col("_le").replace_strict({n: c for n, (_, c) in enumerate(LEGAL_ENTITIES)}).alias("CurrencyCode"),
            pl.format("C-{}", pl.col("RecId") % 2000).alias("AccountNum"),
            pl.format("CIV-{}", pl.col("RecId")).alias("Voucher"),
            pl.lit("2024-01-31").alias("TransDate"),
            _cents_text(pl.col("_cents")).cast(money).alias("AmountCur"),
            pl.format("CIN-{}", pl.col("RecId")).alias("Invoice"),
            pl.lit("Sales").alias("TransType"),
        )
        .with_columns(
            pl.col("legal_entity").str.to_lowercase().alias("dataAreaId"), pl.col("AmountCur").alias("AmountMst")
        )
        .select(
            "legal_entity",
            "dataAreaId",
            "RecId",
            "AccountNum",
            "Voucher",
            "TransDate",
            "AmountCur",
            "AmountMst",
            "CurrencyCode",
            "Invoice",
            "TransType",
        )
    )
    frame.write_parquet(DATA / "ar_before.parquet")
    new = frame.head(3).with_columns(
        (pl.col("Voucher") + "-NEW").alias("Voucher"), (pl.col("RecId") + rows).alias("RecId")
    )
    pl.concat([frame, new]).write_parquet(DATA / "ar_after.parquet")


# --- the timed run (in a child process) ------------------------------------------------------------


def run_once() -> dict:
    from cutover.reconcile import (
        compare_balances,
        normalise_dataverse,
        normalise_fno,
        normalise_legacy,
        reconcile_milestones,
        reference_from_legacy,
    )

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    # As the verification suite does (checks/data.py): each side read and normalised once into
    # memory, then reconciled (the suite reconciles again per tolerance set).
    legacy_scan = pl.scan_parquet(DATA / "legacy.parquet")
    reference = reference_from_legacy(legacy_scan)
    legacy, dataverse, fno = pl.collect_all(
        [
            normalise_legacy(legacy_scan),
            normalise_dataverse(pl.scan_parquet(DATA / "dataverse.parquet"), reference),
            normalise_fno(pl.scan_parquet(DATA / "fno.parquet")),
        ]
    )
    t1 = time.perf_counter()
    result = reconcile_milestones(legacy, dataverse, fno)
    t2 = time.perf_counter()
    balances = compare_balances(
        pl.scan_parquet(DATA / "ar_before.parquet"),
        pl.scan_parquet(DATA / "ar_after.parquet"),
        pl.scan_parquet(DATA / "gl_before.parquet"),
        pl.scan_parquet(DATA / "gl_after.parquet"),
    )
    t3 = time.perf_counter()
    # Once more in the same process, as the suite does for a second tolerance set: memory the
    # process has touched before is cheap to touch again, so this is the comparison's own cost
    # (on a virtual machine whose host backs guest memory lazily, first touches dominate above).
    peak, used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cpu() - c0
    t4 = time.perf_counter()
    again = reconcile_milestones(legacy, dataverse, fno)
    compare_again = time.perf_counter() - t4
    assert again.summary == result.summary
    timings = {
        "normalise_s": t1 - t0,
        "compare_s": t2 - t1,
        "milestones_s": t2 - t0,
        "balances_s": t3 - t2,
        "total_s": t3 - t0,
        "cpu_s": used,
        "compare_again_s": compare_again,
    }
    mismatches_by_field = dict(
        result.mismatches.filter(pl.col("differs").str.contains("dataverse")).group_by("field").len().iter_rows()
    )
    return {
        **timings,
        "peak_rss_mb": peak,
        "summary": result.summary.as_dict(),
        "dataverse_mismatches_by_field": mismatches_by_field,
        "balances": balances.summary(),
    }


def child_run(script: Path) -> dict:
    """``script --child`` in a fresh process: the JSON line it prints last (its output, and exit
    status 1, when it fails)."""
    answer = subprocess.run([sys.executable, str(script), "--child"], capture_output=True, text=True)
    if answer.returncode != 0:
        raise SystemExit(answer.stdout + answer.stderr)
    return json.loads(answer.stdout.strip().splitlines()[-1])


# --- datacompy -------------------------------------------------------------------------------------


def datacompy_commands() -> list[str]:
    py = VENV / "bin" / "python"
    return [
        f"python -m venv {VENV}",
        f"{py} -m pip install 'datacompy[polars]'",
        f"{py} {HERE / 'bench_reconcile_datacompy.py'} {DATA}",
    ]


def run_datacompy(ours: dict) -> int:
    py = VENV / "bin" / "python"
    print("\ndatacompy reference (its own virtual environment; this script installs nothing):")
    for command in datacompy_commands():
        print(f"    {command}")
    if not py.exists():
        print(f"{VENV} does not exist: run the first two commands, then this script again with --datacompy")
        return 0
    answer = subprocess.run(
        [str(py), str(HERE / "bench_reconcile_datacompy.py"), str(DATA)], capture_output=True, text=True
    )
    if answer.returncode != 0:
        print(answer.stdout + answer.stderr)
        return 1
    theirs = json.loads(answer.stdout.strip().splitlines()[-1])
    s = ours["summary"]
    by_field = ours["dataverse_mismatches_by_field"]
    pairs = [
        ("only in legacy (missing in Dataverse)", theirs["df1_unq_rows"], s["missing_in_dataverse"]),
        ("only in Dataverse (unexpected)", theirs["df2_unq_rows"], s["unexpected_in_dataverse"]),
        ("amount mismatches", theirs["unequal"].get("amount", 0), by_field.get("amount", 0)),
        ("tax mismatches", theirs["unequal"].get("tax", 0), by_field.get("tax", 0)),
        ("date mismatches", theirs["unequal"].get("date", 0), by_field.get("date", 0)),
    ]
    print(f"datacompy {theirs['datacompy']} on polars {theirs['polars']}: {theirs['seconds']:.2f} s for the pair")
    same = True
    for label, a, b in pairs:
        flag = "==" if a == b else "!="
        same &= a == b
        print(f"    {label:<40} datacompy {a:>8,} {flag} ours {b:>8,}")
    print("findings agree" if same else "FINDINGS DIFFER")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--milestones", type=int, default=1_000_000)
    parser.add_argument("--gl-lines", type=int, default=1_000_000)
    parser.add_argument("--ar-rows", type=int, default=200_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--datacompy", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, each in a fresh process (median printed)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once()))
        return 0
    marker = DATA / "sizes.json"
    sizes = {"milestones": args.milestones, "gl_lines": args.gl_lines, "ar_rows": args.ar_rows}
    if args.regenerate or not marker.exists() or json.loads(marker.read_text()) != sizes:
        generate(args.milestones, args.gl_lines, args.ar_rows)
        marker.write_text(json.dumps(sizes))
    print(machine(), f"load average {os.getloadavg()[0]:.2f}")
    runs = []
    for _ in range(args.repeat):
        ours = child_run(Path(__file__))
        runs.append(ours)
        print(
            f"  run {len(runs)}: reconcile {sizes['milestones']:,} milestones x3 {ours['milestones_s']:.2f} s "
            f"(read + normalise {ours['normalise_s']:.2f}, compare {ours['compare_s']:.2f}), "
            f"balances ({sizes['gl_lines']:,} GL lines x2, {sizes['ar_rows']:,} AR rows x2) {ours['balances_s']:.2f} s, "
            f"total {ours['total_s']:.2f} s ({ours['cpu_s']:.1f} s of CPU), peak RSS {ours['peak_rss_mb']:,.0f} MB; "
            f"compare again in the same process {ours['compare_again_s']:.2f} s"
        )
        if ours["summary"] != runs[0]["summary"] or ours["balances"] != runs[0]["balances"]:
            print("FINDINGS DIFFER BETWEEN RUNS")
            return 1
    print(
        f"median of {len(runs)}: total {statistics.median(r['total_s'] for r in runs):.2f} s (target <= 2 s), "
        f"reconcile {statistics.median(r['milestones_s'] for r in runs):.2f} s "
        f"(read + normalise {statistics.median(r['normalise_s'] for r in runs):.2f} s, "
        f"compare {statistics.median(r['compare_s'] for r in runs):.2f} s), "
        f"balances {statistics.median(r['balances_s'] for r in runs):.2f} s; "
        f"peak RSS at most {max(r['peak_rss_mb'] for r in runs):,.0f} MB (target <= 1,536 MB); "
        f"compare again in the same process {statistics.median(r['compare_again_s'] for r in runs):.2f} s"
    )
    print("findings:", json.dumps(ours["summary"]))
    print("balances:", json.dumps(ours["balances"]))
    if args.datacompy:
        return run_datacompy(ours)
    return 0


if __name__ == "__main__":
    sys.exit(main())
