"""Validation against the environment: the seeded world's extract is valid, the reference is
read with a few set-based GETs and nothing is written; conflicts, line values, dimensions."""

from __future__ import annotations

import time

from tests.test_source_common import CUTOVER, check, writes


async def test_the_seed_extract_is_valid_in_its_world_and_nothing_is_written(sim, world_db):
    since = (await sim.log())[-1]["seq"] if await sim.log() else 0
    t = time.perf_counter()
    validated = await check(sim, world_db.with_suffix(".csv"))
    elapsed = time.perf_counter() - t
    assert validated.problems == [], validated.problems[:5]
    assert validated.ok and validated.loadable
    assert (validated.rows_read, validated.rows.height, validated.excluded.height) == (200, 150, 50)
    assert validated.cutover_date == CUTOVER
    assert (
        validated.rows.select(
            "milestone_id", "company_id", "contract_id", "line_id", "project_id", "customer_id", "currency_id"
        )
        .null_count()
        .sum_horizontal()
        .item()
        == 0
    )
    assert await writes(sim, since) == []
    print(elapsed)
