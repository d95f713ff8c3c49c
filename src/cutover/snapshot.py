"""AR and GL snapshots: what Accounts receivable and the General ledger held, as files with proof.

The runbook takes one before the migration (``snapshot.before``) and one after the invoices
are confirmed and the maps run again (``snapshot.after``); ``reconcile`` compares the two. A
snapshot is read-only work on F&O and writes only below the workspace:

    <workspace>/snapshots/<env>/<label>/ar.parquet      CustTransactions of the legal entities in scope
                                        gl.parquet      GeneralJournalAccountEntryBiEntities joined to
                                                        GeneralJournalEntryBiEntities, same scope
                                        manifest.json   counts, control totals, highest keys, SHA-256s
                                                        (see cutover.snapshot_manifest)

How it reads (:func:`take_snapshot`), all through :meth:`cutover.fno.FnoClient.partitioned`:

- AR: one partition per legal entity (``dataAreaId eq 'usmf'``, cross-company).
- GL account entries (lines) carry no company: they are read in key ranges of ``SourceKey``
  (:meth:`FnoClient.plan_partitions`, open ends), all of them; GL entries (headers) are read
  per legal entity on ``SubledgerVoucherDataAreaId``. A line belongs to the snapshot when its
  ``GeneralJournalEntry`` is an entry in scope (an inner join against the entries in scope,
  one part file of lines at a time).
- The three reads run at the same time. Entries posted while the lines were being read are
  caught by a last read per legal entity of the entries above the highest key already seen,
  started after the lines are done, so no line read loses its entry to timing.
- Memory stays flat: each page becomes a small polars frame in the reader, before it is
  queued (``map_page``; :mod:`cutover.snapshot_frames`: explicit Decimal schema, ``5000`` and
  ``1234.56`` are both ``Decimal(38, 16)``, never Int64 or Float64; a value with more than 16
  decimals or 22 integer digits — which F&O cannot store — is refused, never rounded); frames
  are written as Parquet part files every ``batch_rows`` rows; the final files are produced by
  ``scan_parquet(parts).sink_parquet`` (streaming) and the control totals are summed
  100,000 rows at a time. Pages of 5,000 rows by default. Row order in the files is not
  defined; compare on keys (AR ``dataAreaId, RecId``; GL ``SourceKey``).
- Everything is written in a staging directory ``<env>/.<label>.partial-…`` and renamed into
  place at the end: a failed or cancelled snapshot leaves no half label behind (its staging
  directory is removed).

A label that exists is refused unless ``retake=True``; then the earlier snapshot is kept, moved
to ``<label>.<UTC timestamp>/`` (never deleted or overwritten). :func:`read_snapshot` and
:func:`~cutover.snapshot_manifest.load_manifest` check every file's SHA-256 against the
manifest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from . import odata
from .errors import InputError, UsageError, WorkspaceProblem
from .files import write_private_file
from .fno import FnoClient, Partition, company_partitions
from .journal import file_sha256
from .snapshot_frames import (
    AR_COLUMNS,
    AR_SCHEMA,
    GL_COLUMNS,
    GL_ENTRY_SCHEMA,
    GL_LINE_SCHEMA,
    ROW_GROUP_ROWS,
    SNAPSHOT_SCALE,
    Parts,
    SnapshotReadError,
    page_frame,
)
from .snapshot_manifest import (
    MANIFEST_FILE,
    FileRecord,
    SnapshotManifest,
    SnapshotMissing,
    SnapshotTampered,
    ar_totals,
    gl_totals,
    load_manifest,
)

__all__ = [
    "AR_ENTITY",
    "AR_SCHEMA",
    "GL_ENTRY_SCHEMA",
    "GL_LINE_SCHEMA",
    "GL_ENTRY_ENTITY",
    "GL_LINE_ENTITY",
    "SNAPSHOT_SCALE",
    "Progress",
    "SnapshotExists",
    "SnapshotManifest",
    "SnapshotMissing",
    "SnapshotPlan",
    "SnapshotReadError",
    "SnapshotTampered",
    "load_manifest",
    "page_frame",
    "plan_snapshot",
    "read_snapshot",
    "snapshot_dir",
    "take_snapshot",
]

AR_ENTITY = "CustTransactions"
GL_LINE_ENTITY = "GeneralJournalAccountEntryBiEntities"
GL_ENTRY_ENTITY = "GeneralJournalEntryBiEntities"
SNAPSHOTS_DIR = "snapshots"
DEFAULT_GL_PARTS = 8
DEFAULT_BATCH_ROWS = 100_000
# Pages of 5,000 rows (F&O's own are 10,000): half the row dicts in flight per reader, for a
# few more requests (200 for a million lines, far inside the 6,000 per 5 minutes).
DEFAULT_PAGE_SIZE = 5_000


Progress = Callable[[str, int, "int | None"], object]
"""``progress(stage, rows_done, rows_total_or_None)``; stages ``ar``, ``gl-lines``, ``gl-entries``
(rows read so far) and ``files`` (0 of 2 … 2 of 2 files written)."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_ENTITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,9}")


class SnapshotExists(UsageError):
    """The label already has a snapshot and ``retake`` was not asked for."""


# --- the plan (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotPlan:
    workspace: Path
    environment: str
    label: str
    legal_entities: tuple[str, ...]  # upper-case codes, sorted, unique
    directory: Path
    ar_path: Path
    gl_path: Path
    manifest_path: Path
    ar_partitions: tuple[Partition, ...]  # per legal entity on dataAreaId
    gl_entry_partitions: tuple[Partition, ...]  # per legal entity on SubledgerVoucherDataAreaId
    gl_line_parts: int  # key ranges on SourceKey, planned by probing lo / hi at run time
    retake: bool
    batch_rows: int
    page_size: int | None


def snapshot_dir(workspace: str | Path, env: str, label: str) -> Path:
    """``<workspace>/snapshots/<env>/<label>`` (names checked: letters, digits, ``_`` and ``-``)."""
    for what, value in (("environment", env), ("label", label)):
        if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
            raise InputError(
                f"snapshot {what} {value!r} is not allowed",
                fix=f"use 1 to 40 letters, digits, '_' or '-' for the {what} (e.g. before, after)",
            )
    return Path(workspace) / SNAPSHOTS_DIR / env / label


def _legal_entities(codes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(codes, str):
        codes = [codes]
    out: set[str] = set()
    for code in codes:
        text = str(code).strip().upper()
        if not _ENTITY_RE.fullmatch(text):
            raise InputError(f"{code!r} is not a legal entity code", fix="pass codes such as USMF")
        out.add(text)
    if not out:
        raise InputError(
            "a snapshot needs at least one legal entity", fix="pass the legal entities of the validated extract"
        )
    return tuple(sorted(out))


def plan_snapshot(
    workspace: str | Path,
    env: str,
    label: str,
    legal_entities: Iterable[str],
    *,
    retake: bool = False,
    gl_parts: int = DEFAULT_GL_PARTS,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    page_size: int | None = DEFAULT_PAGE_SIZE,
) -> SnapshotPlan:
    """What :func:`take_snapshot` will read and write; no I/O."""
    if gl_parts < 1 or batch_rows < 1:
        raise InputError(f"gl_parts and batch_rows must be at least 1 (got {gl_parts}, {batch_rows})")
    directory = snapshot_dir(workspace, env, label)
    entities = _legal_entities(legal_entities)
    return SnapshotPlan(
        workspace=Path(workspace),
        environment=env,
        label=label,
        legal_entities=entities,
        directory=directory,
        ar_path=directory / "ar.parquet",
        gl_path=directory / "gl.parquet",
        manifest_path=directory / MANIFEST_FILE,
        ar_partitions=tuple(company_partitions(entities)),
        gl_entry_partitions=tuple(company_partitions(entities, field="SubledgerVoucherDataAreaId")),
        gl_line_parts=gl_parts,
        retake=retake,
        batch_rows=batch_rows,
        page_size=page_size,
    )


# --- pages to frames to part files ---------------------------------------------------------------


async def _drain(
    frames: AsyncIterator[pl.DataFrame],
    parts: Parts,
    stage: str,
    progress: Progress | None,
    total: int | None,
    on_frame: Callable[[pl.DataFrame], None] | None = None,
) -> None:
    """Page frames (from :meth:`FnoClient.partitioned` with ``map_page``) into part files."""
    async with contextlib.aclosing(frames):
        async for frame in frames:
            if on_frame is not None:
                on_frame(frame)
            await parts.add(frame)
            if progress is not None:
                progress(stage, parts.rows, total)
    await parts.flush()


def _framer(schema: pl.Schema, entity: str) -> Callable[[list[dict]], pl.DataFrame]:
    return functools.partial(page_frame, schema=schema, entity=entity)


async def _all(*coros) -> None:
    """Run `coros` together; the first failure cancels the others and is raised as itself
    (not wrapped in an ExceptionGroup: the CLI maps the tool's own errors to exit codes)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _total(fno: FnoClient, entity: str, partitions: Iterable[Partition]) -> int:
    return sum([await fno.count(entity, p.filter) for p in partitions])


# --- taking one ------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _refuse_existing(plan: SnapshotPlan) -> None:
    if plan.directory.exists() and not plan.retake:
        raise SnapshotExists(
            f"a snapshot labelled '{plan.label}' already exists for {plan.environment}",
            where=str(plan.directory),
            fix="to take it again, ask for a retake (--retake); the existing one is kept beside it",
        )


def _archive(directory: Path) -> Path:
    """Move an existing snapshot aside to ``<label>.<UTC timestamp>`` (never over anything)."""
    base = directory.with_name(f"{directory.name}.{_stamp(_now())}")
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    os.rename(directory, target)
    return target


async def take_snapshot(
    fno: FnoClient,
    workspace: str | Path,
    env: str,
    label: str,
    legal_entities: Iterable[str],
    *,
    retake: bool = False,
    organization_id: str | None = None,
    progress: Progress | None = None,
    gl_parts: int = DEFAULT_GL_PARTS,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    page_size: int | None = DEFAULT_PAGE_SIZE,
) -> SnapshotManifest:
    """Read AR and GL of `legal_entities` from F&O into ``<workspace>/snapshots/<env>/<label>/``
    and return its manifest (see the module docstring). Raises :class:`SnapshotExists` if the
    label is taken and not `retake`; on any failure nothing is left but the earlier snapshot."""
    plan = plan_snapshot(
        workspace,
        env,
        label,
        legal_entities,
        retake=retake,
        gl_parts=gl_parts,
        batch_rows=batch_rows,
        page_size=page_size,
    )
    _refuse_existing(plan)
    started = _now()
    staging = plan.directory.with_name(f".{label}.partial-{_stamp(started)}-{os.getpid()}")
    try:
        staging.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise WorkspaceProblem(f"cannot create the snapshot directory ({exc.strerror})", where=str(staging)) from None
    try:
        await _take(fno, plan, staging, started, organization_id, progress)
        _refuse_existing(plan)  # another process may have taken the label meanwhile
        if plan.directory.exists():
            _archive(plan.directory)
        os.rename(staging, plan.directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging files only
        raise
    return load_manifest(plan.directory)


async def _take(
    fno: FnoClient,
    plan: SnapshotPlan,
    staging: Path,
    started: dt.datetime,
    organization_id: str | None,
    progress: Progress | None,
) -> SnapshotManifest:
    work = staging / "parts"
    ar = Parts(work / "ar", AR_SCHEMA, plan.batch_rows)
    lines = Parts(work / "gl-lines", GL_LINE_SCHEMA, plan.batch_rows)
    entries = Parts(work / "gl-entries", GL_ENTRY_SCHEMA, plan.batch_rows)
    ps = plan.page_size

    line_partitions = await fno.plan_partitions(GL_LINE_ENTITY, "SourceKey", plan.gl_line_parts)
    totals: dict[str, int | None] = {"ar": None, "gl-lines": None, "gl-entries": None}
    if progress is not None:
        totals = {
            "ar": await _total(fno, AR_ENTITY, plan.ar_partitions),
            "gl-lines": await fno.count(GL_LINE_ENTITY),
            "gl-entries": await _total(fno, GL_ENTRY_ENTITY, plan.gl_entry_partitions),
        }

    highest: dict[str, int] = {}  # per legal entity: the highest entry SourceKey read

    def seen(frame: pl.DataFrame) -> None:
        if frame.height:
            top = frame.group_by(pl.col("SubledgerVoucherDataAreaId").str.to_uppercase()).agg(pl.col("SourceKey").max())
            for le, key in top.iter_rows():
                highest[le] = max(key, highest.get(le, key))

    def read(entity: str, partitions, schema: pl.Schema, **kw) -> AsyncIterator[pl.DataFrame]:
        return fno.partitioned(
            entity, partitions, select=list(schema.names()), page_size=ps, map_page=_framer(schema, entity), **kw
        )

    await _all(
        _drain(read(AR_ENTITY, plan.ar_partitions, AR_SCHEMA), ar, "ar", progress, totals["ar"]),
        _drain(
            read(GL_ENTRY_ENTITY, plan.gl_entry_partitions, GL_ENTRY_SCHEMA),
            entries,
            "gl-entries",
            progress,
            totals["gl-entries"],
            seen,
        ),
        _drain(
            read(GL_LINE_ENTITY, line_partitions, GL_LINE_SCHEMA, concurrency=plan.gl_line_parts),
            lines,
            "gl-lines",
            progress,
            totals["gl-lines"],
        ),
    )
    # Entries posted while the lines were read: per legal entity, everything above the highest key seen.
    catch_up = []
    for le, part in zip(plan.legal_entities, plan.gl_entry_partitions, strict=True):
        above = odata.compare("SourceKey", "gt", highest[le]) if le in highest else None
        catch_up.append(Partition(odata.and_(part.filter, above) if above else part.filter, f"{le} catch-up"))
    await _drain(
        read(GL_ENTRY_ENTITY, catch_up, GL_ENTRY_SCHEMA), entries, "gl-entries", progress, totals["gl-entries"]
    )

    if progress is not None:
        progress("files", 0, 2)
    ar_path, gl_path = staging / plan.ar_path.name, staging / plan.gl_path.name
    await asyncio.to_thread(_write_ar, ar.files(), ar_path)
    if progress is not None:
        progress("files", 1, 2)
    await asyncio.to_thread(_write_gl, lines.files(), entries.files(), work / "gl", gl_path)
    if progress is not None:
        progress("files", 2, 2)
    shutil.rmtree(work)  # the part files are ours; the final files hold every row

    ar_entities, ar_customers = await asyncio.to_thread(ar_totals, ar_path, plan.legal_entities)
    gl_entities, gl_accounts = await asyncio.to_thread(gl_totals, gl_path, plan.legal_entities)
    files = {}
    for key, path in (("ar", ar_path), ("gl", gl_path)):
        os.chmod(path, 0o600)
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        files[key] = FileRecord(path.name, await asyncio.to_thread(file_sha256, path), path.stat().st_size, rows)
    manifest = SnapshotManifest(
        label=plan.label,
        environment=plan.environment,
        organization_id=str(organization_id).lower() if organization_id else None,
        legal_entities=plan.legal_entities,
        started_utc=started,
        finished_utc=_now(),
        files=files,
        ar_by_legal_entity=ar_entities,
        ar_by_customer=ar_customers,
        gl_by_legal_entity=gl_entities,
        gl_by_main_account=gl_accounts,
        gl_lines_read=lines.rows,
        gl_entries_read=entries.rows,
    )
    write_private_file(staging / MANIFEST_FILE, manifest.dumps())
    return manifest


def _write_ar(parts: list[Path], path: Path) -> None:
    legal_entity = pl.col("dataAreaId").str.to_uppercase().alias("legal_entity")
    scan = pl.scan_parquet(parts, schema=AR_SCHEMA)
    scan.with_columns(legal_entity).select(AR_COLUMNS).sink_parquet(path, row_group_size=ROW_GROUP_ROWS)


def _write_gl(line_parts: list[Path], entry_parts: list[Path], work: Path, path: Path) -> None:
    """Lines joined to their entries in scope, one line part at a time (the entries in scope
    are the only table held whole: a few columns of a quarter of the lines), then one file."""
    heads = (
        pl.scan_parquet(entry_parts, schema=GL_ENTRY_SCHEMA)
        .rename({"SourceKey": "GeneralJournalEntry"})
        .with_columns(pl.col("SubledgerVoucherDataAreaId").str.to_uppercase().alias("legal_entity"))
        .unique("GeneralJournalEntry", keep="first")  # an entry read twice must not double its lines
        .collect()
    )
    work.mkdir(parents=True, exist_ok=True)
    joined = []
    for index, part in enumerate(line_parts):
        out = work / f"part-{index:05d}.parquet"
        lines = pl.read_parquet(part)
        lines.join(heads, on="GeneralJournalEntry", how="inner").select(GL_COLUMNS).write_parquet(
            out, row_group_size=ROW_GROUP_ROWS
        )
        joined.append(out)
    del heads
    pl.scan_parquet(joined).sink_parquet(path, row_group_size=ROW_GROUP_ROWS)


# --- reading one -----------------------------------------------------------------------------------


def read_snapshot(workspace: str | Path, env: str, label: str) -> tuple[pl.LazyFrame, pl.LazyFrame, SnapshotManifest]:
    """The AR and GL frames of a snapshot and its manifest, after checking every file's SHA-256
    (:class:`SnapshotTampered` names a changed file; :class:`SnapshotMissing` if there is none)."""
    directory = snapshot_dir(workspace, env, label)
    if not (directory / MANIFEST_FILE).is_file():
        raise SnapshotMissing(
            f"no snapshot labelled '{label}' for {env}",
            where=str(directory),
            fix=f"take it first (cutover snapshot --env {env} --label {label})",
        )
    manifest = load_manifest(directory)
    return (
        pl.scan_parquet(directory / manifest.files["ar"].name),
        pl.scan_parquet(directory / manifest.files["gl"].name),
        manifest,
    )
