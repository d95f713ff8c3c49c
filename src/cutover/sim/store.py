"""The simulator's SQLite file: table layout, connection settings, and a key/value settings table.

One file holds one simulated environment (Dataverse + F&O + dual-write state), so a
rehearsal can be stopped and resumed, copied, or thrown away.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from .schema import ALL_SETS, MONEY_SCALE, SQL_TYPES, EntitySet

SCHEMA_VERSION = 1

INTERNAL_DDL = """
CREATE TABLE IF NOT EXISTS sim_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- dual-write table maps and their versions
CREATE TABLE IF NOT EXISTS sim_maps (
    name TEXT PRIMARY KEY,            -- Dataverse table of the map, e.g. msdyn_actuals
    title TEXT NOT NULL,              -- as the F&O dual-write page shows it
    project_name TEXT NOT NULL,       -- DualWriteProjectConfigurations.ProjectName
    state TEXT NOT NULL,              -- Not running | Initializing | Running | Paused | Resuming
    active_version TEXT NOT NULL,
    original_version TEXT NOT NULL,
    tables_refreshed_at TEXT
);
CREATE TABLE IF NOT EXISTS sim_map_versions (
    map_name TEXT NOT NULL,
    version TEXT NOT NULL,
    publisher TEXT NOT NULL,
    description TEXT NOT NULL,
    mappings TEXT NOT NULL,           -- JSON list of field mappings
    created_at TEXT NOT NULL,
    PRIMARY KEY (map_name, version)
);
CREATE TABLE IF NOT EXISTS sim_map_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    map_name TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
-- changes waiting in a paused map, applied in order on resume
CREATE TABLE IF NOT EXISTS sim_map_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    map_name TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sim_invoice_milestones (
    invoiceid TEXT NOT NULL,
    milestoneid TEXT NOT NULL,
    PRIMARY KEY (invoiceid, milestoneid)
);
CREATE TABLE IF NOT EXISTS sim_identities (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL,
    display_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    can_write INTEGER NOT NULL DEFAULT 1,
    secret_expired INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sim_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- long-running invoice processes (create / confirm) waiting for their moment (see jobs.py)
CREATE TABLE IF NOT EXISTS sim_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,               -- create | confirm
    target TEXT NOT NULL,             -- the contract (create) or invoice (confirm) id
    due_at REAL NOT NULL,             -- time.time() when it runs
    state TEXT NOT NULL,              -- pending | done | failed
    result TEXT                       -- the invoice id, or the failure message
);
"""


def table_ddl(entity: EntitySet) -> str:
    cols = []
    for f in entity.fields:
        cols.append(f'"{f.name}" {SQL_TYPES[f.kind]}')
    if entity.service == "dataverse":
        cols.append("sim_version INTEGER NOT NULL DEFAULT 1")
        cols.append("sim_createdon TEXT")
        cols.append("sim_modifiedon TEXT")
    key = ", ".join(f'"{k}"' for k in entity.key)
    cols.append(f"PRIMARY KEY ({key})")
    ddl = f'CREATE TABLE IF NOT EXISTS "{entity.table}" ({", ".join(cols)})'
    if len(entity.key) == 1:
        ddl += " WITHOUT ROWID" if entity.service == "dataverse" else ""
    return ddl


def index_ddl() -> list[str]:
    """Indexes for the lookups and filters the runbook and verification use."""
    return [
        'CREATE INDEX IF NOT EXISTS ix_ms_contract ON "dv_msdyn_contractlinescheduleofvalues"("_msdyn_contract_value")',
        'CREATE INDEX IF NOT EXISTS ix_ms_line ON "dv_msdyn_contractlinescheduleofvalues"("_msdyn_contractlineid_value")',
        'CREATE INDEX IF NOT EXISTS ix_sod_order ON "dv_salesorderdetails"("_salesorderid_value")',
        'CREATE INDEX IF NOT EXISTS ix_fno_ms_guid ON "fno_ProjectContractLineMilestones"("ContractLineMilestoneGuid")',
        'CREATE INDEX IF NOT EXISTS ix_gl_entry ON "fno_GeneralJournalAccountEntryBiEntities"("GeneralJournalEntry")',
        'CREATE INDEX IF NOT EXISTS ix_invdet_inv ON "dv_invoicedetails"("_invoiceid_value")',
    ]


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and if new, lay out) a simulator database."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA cache_size=-65536")
    create_tables(conn)
    return conn


def create_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(INTERNAL_DDL)
    for entity in ALL_SETS:
        conn.execute(table_ddl(entity))
        _add_missing_columns(conn, entity)
    for ddl in index_ddl():
        conn.execute(ddl)
    if get_setting(conn, "schema_version") is None:
        set_setting(conn, "schema_version", SCHEMA_VERSION)


def _add_missing_columns(conn: sqlite3.Connection, entity: EntitySet) -> None:
    """A database laid out by an older simulator gets the columns added since (NULL in old rows)."""
    have = {row[1] for row in conn.execute(f'PRAGMA table_info("{entity.table}")')}
    for f in entity.fields:
        if f.name not in have:
            conn.execute(f'ALTER TABLE "{entity.table}" ADD COLUMN "{f.name}" {SQL_TYPES[f.kind]}')


def get_setting(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM sim_settings WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def set_setting(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO sim_settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def next_counter(conn: sqlite3.Connection, name: str, start: int = 1) -> int:
    """A persistent sequence (voucher numbers, RecIds, invoice numbers)."""
    row = conn.execute(
        "INSERT INTO sim_counters(name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
        (name, start),
    ).fetchone()
    return int(row[0])


def money_to_db(value: Decimal) -> int:
    """Decimal -> stored integer; refuses more than 4 decimal places rather than rounding."""
    scaled = value * MONEY_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 4 decimal places")
    return int(scaled)


def money_from_db(value: int | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value) / MONEY_SCALE
