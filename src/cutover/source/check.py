"""Reading and validating an extract in one call: the API the migrate command, the runbook and
the TUI use.

- ``load_and_validate(path, session, mapping_path, cutover_date)`` — read the file, fetch the
  reference through the session's clients (reads only; a read-only session is enough) and
  run every rule. With ``session=None`` only the file rules run (:func:`check_file`).
- ``check_file(path, mapping_path, cutover_date)`` — read and validate the file alone, no
  session: a dry run shows bad input whatever state the environment is in.

A path that cannot be read, or a mapping file that is wrong, raises
:class:`cutover.errors.InputError` (exit 2); a service that cannot be reached raises a
:class:`cutover.transport.ServiceError` (exit 3). Everything wrong *in* the extract is a
problem in the returned :class:`.model.ValidatedExtract`, never an exception.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .mapping import Mapping, load_mapping
from .model import RawExtract, ValidatedExtract
from .read import read_extract
from .reference import fetch_reference
from .validate import validate, validate_file

__all__ = ["check_file", "load_and_validate"]


def _mapping(mapping_path: str | Path | Mapping | None) -> Mapping | None:
    if mapping_path is None or isinstance(mapping_path, Mapping):
        return mapping_path
    return load_mapping(mapping_path)


def check_file(
    path: str | Path,
    mapping_path: str | Path | Mapping | None = None,
    cutover_date: dt.date | str | None = None,
) -> tuple[RawExtract, ValidatedExtract]:
    """Read ``path`` and run the file rules only (no environment)."""
    mapping = _mapping(mapping_path)
    raw = read_extract(path, mapping)
    return raw, validate_file(raw, mapping, cutover_date)


async def load_and_validate(
    path: str | Path,
    session: Any,
    mapping_path: str | Path | Mapping | None = None,
    cutover_date: dt.date | str | None = None,
) -> tuple[RawExtract, ValidatedExtract]:
    """Read ``path``, fetch the reference with ``session.dataverse`` / ``session.fno`` and run
    every rule. ``session`` is a :class:`cutover.session.Session` (or anything with those two
    clients); None runs the file rules only."""
    if session is None:
        return check_file(path, mapping_path, cutover_date)
    mapping = _mapping(mapping_path)
    raw = read_extract(path, mapping)
    reference = await fetch_reference(session.dataverse, getattr(session, "fno", None), raw)
    return raw, validate(raw, reference, mapping=mapping, cutover_date=cutover_date)
