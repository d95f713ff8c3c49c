"""cutover.sim.worldfile: creating a seeded simulator database and its legacy extract, as
`cutover sim seed` does, without printing or exiting (errors are cutover.errors exceptions)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from cutover.errors import EXIT_USAGE, InputError
from cutover.sim import store
from cutover.sim.seed import SCALES, Scale, organization_id
from cutover.sim.worldfile import SCALE_NAMES, SCALE_OVERRIDES, SEED_LIMITS, default_extract_path, seed_database

SMALLER = {"invoiced_milestones": 6, "uninvoiced_milestones": 2, "ar_transactions": 10, "gl_lines": 100}


def _rows(db: Path, table: str) -> int:
    conn = store.connect(db)
    try:
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    finally:
        conn.close()


def test_every_count_has_limits_named_by_its_flag():
    assert list(SEED_LIMITS) == [flag for _, flag in SCALE_OVERRIDES]
    assert SEED_LIMITS["--gl-lines"] == (0, 10_000_000) and SEED_LIMITS["--invoiced"] == (0, 1_000_000)
    assert all(SEED_LIMITS[flag][0] >= 1 for flag in ("--legal-entities", "--customers", "--contracts"))
    for name, flag in SCALE_OVERRIDES:  # the named scales are within them
        low, high = SEED_LIMITS[flag]
        assert all(low <= getattr(spec, name) <= high for spec in SCALES.values())


def test_the_choices_the_cli_offers():
    assert SCALE_NAMES == ("small", "medium", "large") == tuple(SCALES)
    fields = {f.name for f in dataclasses.fields(Scale)}
    assert [name for name, _ in SCALE_OVERRIDES] == [
        "legal_entities",
        "customers",
        "contracts",
        "invoiced_milestones",
        "uninvoiced_milestones",
        "ar_transactions",
        "gl_lines",
    ]
    assert {name for name, _ in SCALE_OVERRIDES} <= fields
    assert all(flag.startswith("--") for _, flag in SCALE_OVERRIDES)


def test_the_default_extract_sits_beside_the_database():
    assert default_extract_path(Path("/w/rehearsal.sqlite")) == Path("/w/rehearsal-legacy-extract.csv")


def test_seed_database_writes_the_world_and_the_extract_and_prints_nothing(tmp_path, capsys):
    db = tmp_path / "deep" / "w.sqlite"
    calls = []
    summary = seed_database(db, seed=4, overrides=SMALLER, progress=lambda *a: calls.append(a))
    extract = default_extract_path(db)
    assert summary.extract_path == str(extract) and extract.is_file()
    assert summary.organization_id == organization_id(4)
    assert summary.scale == "small+custom"
    assert (summary.invoiced_milestones, summary.uninvoiced_milestones, summary.ar_transactions, summary.gl_lines) == (
        6,
        2,
        10,
        100,
    )
    assert summary.contracts == SCALES["small"].contracts == _rows(db, "dv_salesorders")
    assert _rows(db, "fno_CustTransactions") == 10
    with extract.open(newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 8
    assert calls and {c[0] for c in calls} >= {"customers", "gl"}
    assert capsys.readouterr() == ("", "")


def test_none_overrides_are_ignored_and_an_explicit_extract_is_used(tmp_path):
    extract = tmp_path / "elsewhere" / "legacy.csv"
    summary = seed_database(
        tmp_path / "w.sqlite",
        extract=extract,
        overrides={"gl_lines": 50, "customers": None, **{k: v for k, v in SMALLER.items() if k != "gl_lines"}},
    )
    assert summary.extract_path == str(extract) and extract.is_file()
    assert not default_extract_path(tmp_path / "w.sqlite").exists()
    assert summary.gl_lines == 50 and summary.customers == SCALES["small"].customers


def test_an_existing_database_is_refused_without_force_and_left_alone(tmp_path):
    db = tmp_path / "w.sqlite"
    first = seed_database(db, seed=1, overrides=SMALLER)
    before = db.read_bytes()
    with pytest.raises(InputError, match=r"already exists\. Fix: use --force") as info:
        seed_database(db, seed=2, overrides=SMALLER)
    assert info.value.exit_code == EXIT_USAGE and info.value.where == str(db)
    assert db.read_bytes() == before
    conn = store.connect(db)
    try:
        assert store.get_setting(conn, "organization_id") == first.organization_id
    finally:
        conn.close()


def test_force_replaces_the_database(tmp_path):
    db = tmp_path / "w.sqlite"
    seed_database(db, seed=1, overrides=SMALLER)
    second = seed_database(db, seed=2, overrides=SMALLER, force=True)
    conn = store.connect(db)
    try:
        assert store.get_setting(conn, "organization_id") == second.organization_id == organization_id(2)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overrides": {"gl_lines": 1}}, r"--gl-lines cannot be 1"),
        ({"overrides": {"customers": -1}}, r"--customers -1 is out of range\. Fix: use 1 to 200,000"),
        ({"overrides": {"legal_entities": 3, "customers": 2}}, r"--customers 2 is fewer than --legal-entities 3"),
        ({"overrides": {"gl_lines": 10_000_001}}, r"--gl-lines 10,000,001 is out of range\. Fix: use 0 to 10,000,000"),
        ({"overrides": {"invoiced_milestones": 1_000_001}}, r"--invoiced 1,000,001 is out of range"),
        ({"overrides": {"contracts": 0}}, r"--contracts 0 is out of range\. Fix: use 1 to"),
        ({"overrides": {"legal_entities": 0}}, r"--legal-entities 0 is out of range"),
        ({"overrides": {"customers": True}}, r"--customers must be a whole number"),
        ({"overrides": {"gl_line": 5}}, r"unknown scale override\(s\) gl_line"),
        ({"scale": "huge"}, r"unknown scale 'huge'\. Fix: use one of small, medium, large"),
    ],
)
def test_bad_counts_and_names_are_input_errors_and_leave_no_file(tmp_path, kwargs, message):
    db = tmp_path / "w.sqlite"
    with pytest.raises(InputError, match=message):
        seed_database(db, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_seeding_removes_the_half_made_file(tmp_path):
    db = tmp_path / "w.sqlite"

    def interrupt(stage, done, total):
        if stage == "gl":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seed_database(db, overrides=SMALLER, progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    assert seed_database(db, overrides=SMALLER).contracts == SCALES["small"].contracts


def test_a_directory_is_not_a_database(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        seed_database(tmp_path, force=True)
    assert tmp_path.is_dir()
