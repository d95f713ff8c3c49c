"""A milestone's text (legal entity, contract, line, currency) as one number per row, exactly.

Reconciliation compares every pairing's text fields and totals every side per line. Done on
the text itself, that is a string hash or a random string read per row, column and side — most
of the work. Instead each row gets one code: the number of its tuple in a dictionary of the
distinct tuples. Pairs then compare two numbers, sides group by one, and a tuple's text is read
from the dictionary (code ``i`` is row ``i``).

The codes are exact by construction: a frame's rows are joined to the dictionary on the text
itself (one probe per row into a table of the distinct tuples), and the tuples the dictionary
lacks are grouped on their text and added to it. Frames coded against one dictionary share its
codes: equal codes, equal text.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ._frames import mask

__all__ = ["CODE", "encode"]

CODE = pl.UInt32()


def _codes(frame: pl.DataFrame, fields: list[str], dictionary: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """The code of every row of ``frame`` and the dictionary with the tuples it lacked added.

    Rows are looked up in the dictionary by a join on their text (nulls equal); the tuples it
    lacks are then grouped with their rows in one pass (group keys compare nulls as equal too)
    and numbered in order of appearance."""
    codes = pl.zeros(frame.height, CODE, eager=True)
    rest = frame.select(fields).with_row_index("__row")
    if dictionary.height:
        known = dictionary.lazy().with_row_index("__code")
        found = rest.lazy().join(known, on=fields, how="left", nulls_equal=True).select("__row", "__code").collect()
        hit = found.filter(pl.col("__code").is_not_null())
        codes = codes.scatter(hit["__row"], hit["__code"].cast(CODE))
        rest = rest.filter(~mask(frame.height, hit["__row"]))
    if rest.height:
        groups = rest.group_by(fields, maintain_order=True).agg(pl.col("__row"))
        numbered = groups.select(pl.int_range(pl.len(), dtype=CODE).add(dictionary.height).alias("__code"), "__row")
        new = numbered.explode("__row")
        codes = codes.scatter(new["__row"], new["__code"])
        dictionary = pl.concat([dictionary, groups.select(fields)])
    return codes, dictionary


def encode(
    frames: Sequence[pl.DataFrame], fields: Sequence[str], dictionary: pl.DataFrame | None = None
) -> tuple[list[pl.Series], pl.DataFrame]:
    """The codes (``UInt32``, one per row) of each frame's tuples of ``fields``, and the
    dictionary they index (``fields`` only; row ``i`` is code ``i``). Starting from
    ``dictionary`` when given (its codes are kept), else from the first frame's tuples in the
    order they first appear."""
    fields = list(fields)
    if dictionary is None:
        dictionary = pl.DataFrame(schema={f: frames[0].schema[f] for f in fields}) if frames else pl.DataFrame()
    out = []
    for frame in frames:
        codes, dictionary = _codes(frame, fields, dictionary)
        out.append(codes)
    return out, dictionary
