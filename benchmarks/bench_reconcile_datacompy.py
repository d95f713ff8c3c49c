"""datacompy's polars comparison of the legacy ↔ Dataverse milestone pair (reference for
bench_reconcile.py). Runs inside its own virtual environment (datacompy pins an older polars)
and imports nothing from cutover: it reads the two Parquet files bench_reconcile.py wrote,
brings them to the same column names, compares on the milestone id with zero tolerance and
prints one JSON line of counts.

    .bench/datacompy-venv/bin/python benchmarks/bench_reconcile_datacompy.py .bench/reconcile
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import polars as pl

try:
    from datacompy import PolarsCompare
except ImportError:  # older layouts
    from datacompy.polars import PolarsCompare


def main(data: Path) -> None:
    import datacompy

    legacy = pl.read_parquet(data / "legacy.parquet").select(
        pl.col("milestone_id").str.to_lowercase(),
        pl.col("amount"),
        pl.col("tax_amount").alias("tax"),
        pl.col("milestone_date").alias("date"),
    )
    dataverse = pl.read_parquet(data / "dataverse.parquet").select(
        pl.col("msdyn_contractlinescheduleofvalueid").str.to_lowercase().alias("milestone_id"),
        pl.col("msdyn_amount").alias("amount"),
        pl.col("msdyn_tax").alias("tax"),
        pl.col("msdyn_invoicedate").str.to_date("%Y-%m-%d").alias("date"),
    )
    started = time.perf_counter()
    compare = PolarsCompare(legacy, dataverse, join_columns=["milestone_id"], abs_tol=0, rel_tol=0)
    unequal = {stat["column"]: int(stat["unequal_cnt"]) for stat in compare.column_stats}
    out = {
        "datacompy": datacompy.__version__,
        "polars": pl.__version__,
        "df1_unq_rows": compare.df1_unq_rows.height,
        "df2_unq_rows": compare.df2_unq_rows.height,
        "intersect_rows": compare.intersect_rows.height,
        "unequal": unequal,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
