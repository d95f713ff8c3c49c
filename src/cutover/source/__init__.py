"""The legacy extract: read any dialect into text, validate it, hand typed rows to the load.

Stages (each its own module):
- :mod:`.model` — the contract between the stages: column names, the problem record, the
  schema of validated rows.
- :mod:`.mapping` — the optional mapping file (legacy column names, status values, formats).
- :mod:`.read` — bytes → a table of text (CSV of any delimiter and encoding, XLSX, Parquet).
- :mod:`.reference` — what validation needs to know about the environment, fetched with a
  few set-based queries (not one request per row).
- :mod:`.validate` — text table + reference → typed rows, excluded rows and problems; pure.
"""
