"""How close is the reconciliation to the least work its inputs need? A floor for bench_reconcile.py.

bench_reconcile.py times the real thing: ``normalise_*`` → ``reconcile_milestones`` →
``compare_balances`` on 1,000,000 milestones three ways and two 1,000,000-line GL snapshots.
This script times, on the same Parquet files and in fresh processes too, a bare pipeline written
straight in polars that touches every input the real one needs once and does nothing else:

- read the three milestone files and the four snapshot files;
- parse the three id columns to 128-bit integers; resolve Dataverse's three lookups (line,
  contract, currency) through the extract, one hash join each;
- one three-way hash join on the id and one filter over every compared field (contract, line,
  legal entity, currency, amount, tax, date, both statuses);
- count and sum each side per line; GL per legal entity and main account and AR per legal
  entity, customer and currency, before and after, joined; the new vouchers as anti-joins.

It does **not** find duplicates (a hash join pairs them silently), decide scope, build the
missing / unexpected / mismatch frames or their text, roll totals up to four levels, check
money for floats, or sort anything. So it is not a reconciliation and its counts are not
findings; it is a rough lower bound: any correct reconciliation does at least this work, in some
form, on the same machine.

Runs alternate (real, bare, real, bare, …) so that both see the same state of the machine (on a
virtual machine whose host backs guest memory lazily, that state moves single runs by ±0.5 s),
and the medians and the median of the paired ratios are printed.

    python benchmarks/bench_reconcile_floor.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_reconcile  # noqa: E402  (the data and the real run live there)

MONEY = pl.Decimal(38, 16)
POSTED = 192350003  # msdyn_invoicestatus: Customer invoice posted


def _key(column: str) -> pl.Expr:
    hex32 = pl.col(column).str.replace_all("-", "", literal=True)
    return hex32.str.to_integer(base=16, dtype=pl.UInt128, strict=False).alias("_key")


def _line(contract: str, number: str) -> pl.Expr:
    return pl.concat_str([pl.col(contract), pl.lit("-"), pl.col(number).cast(pl.String)])


def bare_run() -> dict:
    data = bench_reconcile.DATA
    started = time.perf_counter()
    legacy_scan = pl.scan_parquet(data / "legacy.parquet")
    lines = legacy_scan.select(
        pl.col("line_id").str.to_lowercase(),
        _line("contract_number", "contract_line").alias("line"),
        "legal_entity",
    ).unique("line_id")
    contracts = legacy_scan.select(
        pl.col("contract_id").str.to_lowercase(), pl.col("contract_number").alias("contract")
    ).unique("contract_id")
    currencies = legacy_scan.select(pl.col("currency_id").str.to_lowercase(), "currency").unique("currency_id")
    legacy = legacy_scan.select(
        _key("milestone_id"),
        "legal_entity",
        pl.col("contract_number").alias("contract"),
        _line("contract_number", "contract_line").alias("line"),
        "currency",
        pl.col("amount").cast(MONEY),
        pl.col("tax_amount").cast(MONEY).alias("tax"),
        pl.col("milestone_date").alias("date"),
    )
    dataverse = (
        pl.scan_parquet(data / "dataverse.parquet")
        .select(
            _key("msdyn_contractlinescheduleofvalueid"),
            pl.col("_msdyn_contractlineid_value").str.to_lowercase().alias("line_id"),
            pl.col("_msdyn_contract_value").str.to_lowercase().alias("contract_id"),
            pl.col("_transactioncurrencyid_value").str.to_lowercase().alias("currency_id"),
            pl.col("msdyn_amount").cast(MONEY).alias("amount"),
            pl.col("msdyn_tax").cast(MONEY).alias("tax"),
            pl.col("msdyn_invoicedate").str.to_date("%Y-%m-%d", strict=False).alias("date"),
            pl.col("msdyn_invoicestatus").alias("status"),
        )
        .join(lines, on="line_id", how="left")
        .join(contracts, on="contract_id", how="left")
        .join(currencies, on="currency_id", how="left")
        .drop("line_id", "contract_id", "currency_id")
    )
    fno = pl.scan_parquet(data / "fno.parquet").select(
        _key("ContractLineMilestoneGuid"),
        pl.col("dataAreaId").str.to_uppercase().alias("legal_entity"),
        pl.col("ProjectContractId").alias("contract"),
        pl.col("ContractLineId").alias("line"),
        pl.col("Amount").cast(MONEY).alias("amount"),
        pl.col("TransactionDate").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("date"),
        pl.col("TransStatus").alias("status"),
    )
    legacy, dataverse, fno = pl.collect_all([legacy, dataverse, fno])
    read = time.perf_counter()

    joined = (
        legacy.lazy()
        .join(dataverse.lazy(), on="_key", how="full", suffix="_d")
        .join(fno.lazy(), on="_key", how="full", suffix="_f")
    )
    compared = [
        f"{field}{side}" for side in ("_d", "_f") for field in ("legal_entity", "contract", "line", "amount", "date")
    ]
    differs = [pl.col(name).ne_missing(pl.col(name[:-2])) for name in compared]
    differs += [
        pl.col("currency_d").ne_missing(pl.col("currency")),
        pl.col("tax_d").ne_missing(pl.col("tax")),
        pl.col("status").ne_missing(POSTED),
        pl.col("status_f").ne_missing(pl.lit("Invoiced")),
    ]
    per_line = [
        frame.lazy().group_by("line").agg(pl.len(), pl.col("amount").sum()) for frame in (legacy, dataverse, fno)
    ]
    differing, *totals = pl.collect_all([joined.filter(pl.any_horizontal(differs)), *per_line])
    compared_at = time.perf_counter()

    def balances(before: pl.LazyFrame, after: pl.LazyFrame, keys: list[str], amount: str) -> pl.LazyFrame:
        sums = [frame.group_by(keys).agg(pl.col(amount).sum()) for frame in (before, after)]
        return (
            sums[0]
            .join(sums[1], on=keys, how="full", suffix="_after")
            .filter(pl.col(amount).ne_missing(pl.col(f"{amount}_after")))
        )

    gl_before, gl_after = (pl.scan_parquet(data / f"gl_{when}.parquet") for when in ("before", "after"))
    ar_before, ar_after = (pl.scan_parquet(data / f"ar_{when}.parquet") for when in ("before", "after"))
    gl_voucher = ["legal_entity", "SubledgerVoucher", "JournalNumber"]
    ar_voucher = ["legal_entity", "Voucher"]
    changed = pl.collect_all(
        [
            balances(gl_before, gl_after, ["legal_entity", "MainAccount"], "AccountingCurrencyAmount"),
            balances(ar_before, ar_after, ["legal_entity", "AccountNum", "CurrencyCode"], "AmountMst"),
            gl_after.join(gl_before.select(gl_voucher).unique(), on=gl_voucher, how="anti"),
            ar_after.join(ar_before.select(ar_voucher).unique(), on=ar_voucher, how="anti"),
        ]
    )
    done = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "read_s": read - started,
        "compare_s": compared_at - read,
        "balances_s": done - compared_at,
        "total_s": done - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "differing_rows": differing.height,
        "line_groups": [t.height for t in totals],
        "changed_balances": [c.height for c in changed[:2]],
        "new_voucher_lines": [c.height for c in changed[2:]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs (real, bare), each in a fresh process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(bare_run()))
        return 0
    if not (bench_reconcile.DATA / "sizes.json").exists():
        print(f"no benchmark data under {bench_reconcile.DATA}: run benchmarks/bench_reconcile.py first")
        return 2
    sizes = json.loads((bench_reconcile.DATA / "sizes.json").read_text())
    print(bench_reconcile.machine(), f"load average {os.getloadavg()[0]:.2f}", f"data {sizes}")
    real, bare = [], []
    for n in range(1, args.rounds + 1):
        real.append(bench_reconcile.child_run(Path(bench_reconcile.__file__)))
        bare.append(bench_reconcile.child_run(Path(__file__)))
        r, b = real[-1], bare[-1]
        print(
            f"  round {n}: real {r['total_s']:.2f} s (read + normalise {r['normalise_s']:.2f}, compare "
            f"{r['compare_s']:.2f}, balances {r['balances_s']:.2f}; {r['cpu_s']:.1f} s CPU, {r['peak_rss_mb']:,.0f} MB)"
            f" | bare {b['total_s']:.2f} s (read {b['read_s']:.2f}, compare {b['compare_s']:.2f}, balances "
            f"{b['balances_s']:.2f}; {b['cpu_s']:.1f} s CPU, {b['peak_rss_mb']:,.0f} MB)"
        )

    def median(runs: list[dict], name: str) -> float:
        return statistics.median(run[name] for run in runs)

    ratio = statistics.median(r["total_s"] / b["total_s"] for r, b in zip(real, bare, strict=True))
    print(
        f"median of {args.rounds}: real {median(real, 'total_s'):.2f} s ({median(real, 'cpu_s'):.1f} s CPU), "
        f"bare {median(bare, 'total_s'):.2f} s ({median(bare, 'cpu_s'):.1f} s CPU); "
        f"real / bare, paired: {ratio:.2f}x"
    )
    print("bare pipeline (not findings):", json.dumps({k: v for k, v in bare[-1].items() if not k.endswith("_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
