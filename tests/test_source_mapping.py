"""The mapping file: the README's example is valid, and every mistake is refused with the
file, line and key named (nothing silently ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cutover.errors import InputError
from cutover.source import Mapping, load_mapping
from cutover.source.model import COLUMNS

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Extract dialects and the mapping file") :]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def _load(tmp_path: Path, text: str) -> Mapping:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return load_mapping(path)


def test_the_readme_example_is_a_valid_mapping(tmp_path):
    mapping = _load(tmp_path, _readme_example())
    assert sorted(mapping.columns.values()) == sorted(COLUMNS)
    assert mapping.encoding == "cp1252" and mapping.delimiter == ";"
    assert (mapping.decimal_separator, mapping.thousands_separator, mapping.date_format) == (",", ".", "%d.%m.%Y")
    assert mapping.ignore == {"Bemerkung"} and mapping.sheet == "Meilensteine"
    assert mapping.status_of(" fakturiert ") == "invoiced" and mapping.status_of("Storniert") == "not_invoiced"
    assert mapping.status_of("Invoiced") is None  # the defaults are replaced, not extended
    assert mapping.target("Betrag netto") == "amount" and mapping.target("amount") == "amount"
    assert mapping.target("Bemerkung") is None


def test_no_mapping_is_the_readme_contract():
    mapping = Mapping()
    assert all(mapping.target(c) == c for c in COLUMNS)
    assert mapping.status_of("Invoiced") == "invoiced" and mapping.status_of("NotInvoiced") == "not_invoiced"


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ('[colums]\n"A" = "legacy_id"\n', 1, "colums", "unknown table"),
        ('[format]\ndelimiter = ";"\ndecimal = ","\n', 3, "[format] decimal", "unknown key"),
        ('[columns]\n"A" = "legacy_id"\n"B" = "amount_excl_tax"\n', 3, "[columns] B", "not a column"),
        ('[format]\nencoding = "latin-99"\n', 2, "[format] encoding", "not an encoding"),
        ('[format]\ndelimiter = ";;"\n', 2, "[format] delimiter", "one character"),
        (
            '[format]\ndecimal_separator = ","\nthousands_separator = ","\n',
            3,
            "[format] thousands_separator",
            "decimal separator",
        ),
        ('[format]\ndate_format = "%d.%m.%Y %H:%M"\n', 2, "[format] date_format", "no other directive"),
        ('[format]\ndate_format = "%d.%m"\n', 2, "[format] date_format", "%Y"),
        (
            '[status]\ninvoiced = ["Done"]\nnot_invoiced = ["done"]\n',
            3,
            "[status] not_invoiced",
            "invoiced and as not invoiced",
        ),
        ("[status]\ninvoiced = []\n", 2, "[status] invoiced", "non-empty"),
        ('[ignore]\ncolumns = ["amount"]\n', 2, "[ignore] columns", "cannot also be ignored"),
        ("[format]\nsheet = 3\n", 2, "[format] sheet", "must be a string"),
        ("columns = 3\n", 1, "columns", "must be a table"),
    ],
)
def test_mistakes_are_refused_with_file_line_and_key(tmp_path, text, line, key, words):
    with pytest.raises(InputError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert f"mapping.toml, line {line}, {key}" in message, message
    assert words in message and info.value.exit_code == 2


def test_unreadable_mapping_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_mapping(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[format\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        load_mapping(tmp_path / "bad.toml")
    (tmp_path / "latin.toml").write_bytes('[columns]\n"W\xe4hrung" = "currency"\n'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_mapping(tmp_path / "latin.toml")


def test_two_legacy_names_may_stand_for_one_column_but_not_both_in_one_file(tmp_path, world_db):
    from tests.test_source_common import check_file, seed_frame, write_csv

    mapping = _load(tmp_path, '[columns]\n"Amount" = "amount"\n"Net" = "amount"\n')
    frame = seed_frame(world_db)
    path = write_csv(frame.rename({"amount": "Net"}), tmp_path / "a.csv")
    assert check_file(path, mapping).problems == []
    both = write_csv(frame.rename({"amount": "Net"}).with_columns(frame["amount"].alias("Amount")), tmp_path / "b.csv")
    assert [(p.rule, p.row, p.column) for p in check_file(both, mapping).problems] == [
        ("column.duplicate", 1, "amount")
    ]
