"""The text codes reconciliation compares and groups by: equal codes exactly when equal text."""

from __future__ import annotations

import itertools

import polars as pl

from cutover.reconcile._tuples import CODE, encode

FIELDS = ["legal_entity", "contract", "line"]


def frame(*rows: tuple[str | None, str | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={f: pl.String() for f in FIELDS}, orient="row")


def tuples(f: pl.DataFrame) -> list[tuple]:
    return list(f.select(FIELDS).iter_rows())


def test_equal_codes_exactly_when_equal_tuples_across_frames():
    a = frame(("USMF", "C1", "C1-1"), ("USMF", "C1", "C1-2"), ("USMF", "C1", "C1-1"), ("DEMF", None, "C1-1"))
    b = frame(("DEMF", None, "C1-1"), ("usmf", "C1", "C1-1"), ("USMF", "C1", "C1-2"), ("USMF", "C1", None))
    (ca, cb), dictionary = encode([a, b], FIELDS)
    assert ca.dtype == CODE and cb.dtype == CODE
    rows = [(t, c) for f, codes in ((a, ca), (b, cb)) for t, c in zip(tuples(f), codes.to_list(), strict=True)]
    for (t1, c1), (t2, c2) in itertools.combinations(rows, 2):
        assert (c1 == c2) == (t1 == t2), (t1, t2)
    # code i is row i of the dictionary; the first frame's tuples come first, in order of appearance
    assert [tuples(dictionary)[c] for _, c in rows] == [t for t, _ in rows]
    assert tuples(dictionary)[:3] == [("USMF", "C1", "C1-1"), ("USMF", "C1", "C1-2"), ("DEMF", None, "C1-1")]
    assert dictionary.height == 5  # case matters: "usmf" is another tuple


def test_a_given_dictionary_keeps_its_codes_and_grows():
    (first,), dictionary = encode([frame(("A", "1", "x"), ("B", "2", "y"))], FIELDS)
    (second,), grown = encode([frame(("B", "2", "y"), ("C", "3", "z"), ("A", "1", "x"))], FIELDS, dictionary)
    assert first.to_list() == [0, 1]
    assert second.to_list() == [1, 2, 0]
    assert tuples(grown) == [("A", "1", "x"), ("B", "2", "y"), ("C", "3", "z")]


def test_empty_frames_have_no_codes():
    (codes, other), dictionary = encode([frame(), frame(("A", "1", "x"))], FIELDS)
    assert codes.len() == 0 and other.to_list() == [0]
    assert dictionary.height == 1
