"""The legacy extract: read any dialect into text, validate it, hand typed rows to the load.

Stages (each its own module):
- :mod:`.model` — the contract between the stages: column names, the problem record, the
  schema of validated rows.
- :mod:`.mapping` — the optional mapping file (legacy column names, status values, formats).
- :mod:`.read` — bytes → a table of text (CSV of any delimiter and encoding, XLSX, Parquet).
- :mod:`.reference` — what validation needs to know about the environment, fetched with a
  few set-based queries (not one request per row).
- :mod:`.validate` — text table + reference → typed rows, excluded rows and problems; pure.
- :mod:`.check` — read + reference + validate in one call (``load_and_validate``), or the file
  alone without a session (``check_file``).
"""

from .check import check_file, load_and_validate
from .mapping import Mapping, load_mapping
from .model import COLUMNS, Problem, RawExtract, Summary, ValidatedExtract, problems_frame
from .read import read_extract
from .reference import Reference, fetch_reference
from .validate import RULES, validate, validate_file, write_problems

__all__ = [
    "COLUMNS",
    "RULES",
    "Mapping",
    "Problem",
    "RawExtract",
    "Reference",
    "Summary",
    "ValidatedExtract",
    "check_file",
    "fetch_reference",
    "load_and_validate",
    "load_mapping",
    "problems_frame",
    "read_extract",
    "validate",
    "validate_file",
    "write_problems",
]
