"""$filter -> SQLite translation, checked by the rows a real simulator database returns."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from cutover.sim.odata_filter import FilterError, compile_filter
from cutover.sim.schema import DATAVERSE, FNO, EntitySet, Field, Kind
from cutover.sim.store import connect, table_ddl

ACCOUNTS = DATAVERSE["accounts"]
MILESTONES = DATAVERSE["msdyn_contractlinescheduleofvalues"]
FNO_MILESTONES = FNO["ProjectContractLineMilestones"]
CUST_TRANS = FNO["CustTransactions"]

EUR = "5f1a3c2e-0d4b-4e8a-9c61-7b2d9e0f4a11"
USD = "0b7e6d5c-4a3b-4c2d-8e1f-a0b9c8d7e6f5"


def _guid(n: int) -> str:
    return f"aaaaaaaa-0000-4000-8000-{n:012d}"


A1, A2, A3, A4, A5, A6 = (_guid(n) for n in range(1, 7))
M1, M2, M3, M4, M5 = (_guid(n) for n in range(11, 16))


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = connect(":memory:")
    conn.executemany(
        'INSERT INTO "dv_accounts" (accountid, name, accountnumber, _transactioncurrencyid_value) VALUES (?, ?, ?, ?)',
        [
            (A1, "Contoso Ltd", "C-100", EUR),
            (A2, "O'Brien & Sons", "50% off", USD),
            (A3, "Fabrikam_Inc", None, None),
            (A4, "fabrikamXInc", "F-2", None),
            (A5, "Contoso 100% Pure", "C-200", EUR),
            (A6, "Contoso 1005 Pure", "C-300", None),
        ],
    )
    conn.executemany(
        'INSERT INTO "dv_msdyn_contractlinescheduleofvalues" '
        "(msdyn_contractlinescheduleofvalueid, msdyn_name, msdyn_amount, msdyn_invoicedate, msdyn_invoicestatus) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (M1, "Design sign-off", 1_000_100, "2024-01-31", 192350001),  # 100.01
            (M2, "Build", 1_000_050, "2024-02-01", 192350003),  # 100.005
            (M3, "Test", 1_000_000, "2024-02-29", 192350001),  # 100.00
            (M4, "Go-live", None, None, 192350000),
            (M5, "Hypercare", 2_505_000, "2024-03-01", 192350002),  # 250.50
        ],
    )
    conn.executemany(
        'INSERT INTO "fno_ProjectContractLineMilestones" '
        "(dataAreaId, ContractLineMilestoneIdentifier, Description, Amount, TransactionDate, TransStatus) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("usmf", "F1", "O'Brien milestone", 10_000_000, "2024-01-31T22:30:00Z", 4),
            ("usmf", "F2", "Second", 5_000_000, "2024-02-01T00:00:00Z", 1),
            ("usmf", "F3", "ProjTransStatus'Invoiced'", 5_000_000, "2024-02-01T10:15:30Z", 3),
            ("demf", "F4", "Fourth", 7_500_000, "2024-03-01T00:00:00Z", 4),
        ],
    )
    conn.executemany(
        'INSERT INTO "fno_CustTransactions" (dataAreaId, RecId, AccountNum, AmountCur, TransType) VALUES (?, ?, ?, ?, ?)',
        [
            ("usmf", 5_000_000_001, "US-001", -1_005_000, 2),  # -100.50, Sales
            ("usmf", 5_000_000_002, "US-001", 1_005_000, 15),  # 100.50, Payment
            ("usmf", 7, "US-002", -1_005_001, 2),  # -100.5001, Sales
        ],
    )
    yield conn
    conn.close()


def rows(db: sqlite3.Connection, entity: EntitySet, text: str, key: str) -> set:
    fragment, params = compile_filter(text, entity)
    sql = f'SELECT "{key}" FROM "{entity.table}" WHERE {fragment}'
    return {row[0] for row in db.execute(sql, params)}


def accounts(db: sqlite3.Connection, text: str) -> set:
    return rows(db, ACCOUNTS, text, "accountid")


def milestones(db: sqlite3.Connection, text: str) -> set:
    return rows(db, MILESTONES, text, "msdyn_contractlinescheduleofvalueid")


def fno_milestones(db: sqlite3.Connection, text: str) -> set:
    return rows(db, FNO_MILESTONES, text, "ContractLineMilestoneIdentifier")


def cust_trans(db: sqlite3.Connection, text: str) -> set:
    return rows(db, CUST_TRANS, text, "RecId")


def error(text: str, entity: EntitySet) -> str:
    with pytest.raises(FilterError) as info:
        compile_filter(text, entity)
    return str(info.value)


# --- comparison and logical operators ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("msdyn_invoicestatus eq 192350001", {M1, M3}),
        ("msdyn_invoicestatus ne 192350001", {M2, M4, M5}),
        ("msdyn_invoicestatus gt 192350001", {M2, M5}),
        ("msdyn_invoicestatus ge 192350002", {M2, M5}),
        ("msdyn_invoicestatus lt 192350001", {M4}),
        ("msdyn_invoicestatus le 192350001", {M1, M3, M4}),
        ("msdyn_invoicestatus in (192350002, 192350003)", {M2, M5}),
        ("msdyn_invoicestatus in (192350000)", {M4}),
    ],
)
def test_comparison_operators_on_option_values(db: sqlite3.Connection, text: str, expected: set) -> None:
    """Dataverse filter-rows: eq ne gt ge lt le compare a property and a value; choice columns
    filter on their integer option value (192350001 = Ready for invoicing). OData 4.01 URL conventions,
    In operator: `in` tests membership of a list, a one-element list written `(x)`."""
    assert milestones(db, text) == expected


def test_logical_operators_and_grouping(db: sqlite3.Connection) -> None:
    """OData URL conventions, Logical Operators / Grouping / Operator Precedence: and, or,
    not; parentheses override precedence and `and` binds tighter than `or`."""
    grouped = "(msdyn_invoicestatus eq 192350001 or msdyn_invoicestatus eq 192350002) and not (msdyn_amount gt 200)"
    assert milestones(db, grouped) == {M1, M3}
    ungrouped = "msdyn_invoicestatus eq 192350002 or msdyn_invoicestatus eq 192350001 and msdyn_amount gt 100"
    assert milestones(db, ungrouped) == {M5, M1}


def test_not_without_space_is_accepted(db: sqlite3.Connection) -> None:
    """Dataverse (ODataLib) accepts `not(` directly followed by the parenthesised expression."""
    assert milestones(db, "not(msdyn_invoicestatus eq 192350001)") == {M2, M4, M5}


def test_literal_on_the_left_is_mirrored(db: sqlite3.Connection) -> None:
    """OData URL conventions, Comparison Operators: a comparison's operands may appear in either order;
    `100 lt msdyn_amount` means msdyn_amount gt 100."""
    assert milestones(db, "192350001 eq msdyn_invoicestatus") == {M1, M3}
    assert milestones(db, "100 lt msdyn_amount") == {M1, M2, M5}


# --- null ----------------------------------------------------------------------------------


def test_eq_null_and_ne_null(db: sqlite3.Connection) -> None:
    """OData 4.0 §5.1.1.1.1: `eq null` matches nulls, `ne null` matches non-nulls."""
    assert accounts(db, "accountnumber eq null") == {A3}
    assert accounts(db, "accountnumber ne null") == {A1, A2, A4, A5, A6}
    assert milestones(db, "msdyn_amount eq null or msdyn_invoicedate eq null") == {M4}
    assert accounts(db, "null eq accountnumber") == {A3}


def test_comparison_with_a_null_field_is_not_returned(db: sqlite3.Connection) -> None:
    """Dataverse filter-rows: records aren't included if the expression evaluates to false or
    null, so `ne` never returns rows whose field is null."""
    assert accounts(db, "accountnumber ne 'C-100'") == {A2, A4, A5, A6}
    assert milestones(db, "msdyn_amount lt 1000") == {M1, M2, M3, M5}


def test_in_list_with_null(db: sqlite3.Connection) -> None:
    """OData 4.01 URL conventions, In operator: `in` is true when the value equals any list item; a null item
    matches null values like `eq null`."""
    assert accounts(db, "accountnumber in ('c-100', null)") == {A1, A3}


# --- strings and string functions ------------------------------------------------------------


def test_string_equality_is_case_insensitive(db: sqlite3.Connection) -> None:
    """Dataverse and F&O compare strings with a case-insensitive SQL collation."""
    assert accounts(db, "name eq 'contoso ltd'") == {A1}
    assert accounts(db, "accountnumber in ('C-100', 'c-200')") == {A1, A5}
    assert fno_milestones(db, "dataAreaId eq 'USMF'") == {"F1", "F2", "F3"}


def test_doubled_quote_in_string_literal(db: sqlite3.Connection) -> None:
    """OData 4.0 ABNF (SQUOTE-in-string): a single quote inside a string literal is doubled."""
    assert accounts(db, "name eq 'O''Brien & Sons'") == {A2}
    assert accounts(db, "contains(name,'O''Brien')") == {A2}
    assert accounts(db, "startswith(name,'o''b')") == {A2}


def test_contains_escapes_percent(db: sqlite3.Connection) -> None:
    """OData URL conventions, contains function: contains is a substring test, so `%` is a literal character,
    not a SQL wildcard ('Contoso 1005 Pure' must not match '100%')."""
    assert accounts(db, "contains(name,'100%')") == {A5}
    assert accounts(db, "contains(accountnumber,'50%')") == {A2}


def test_startswith_and_endswith_escape_underscore(db: sqlite3.Connection) -> None:
    """OData URL conventions, startswith / endswith functions: they test a literal prefix or
    suffix, so `_` is not a one-character wildcard ('fabrikamXInc' must not match 'Fabrikam_')."""
    assert accounts(db, "startswith(name,'Fabrikam_')") == {A3}
    assert accounts(db, "endswith(name,'_inc')") == {A3}
    assert accounts(db, "endswith(name,'Inc')") == {A3, A4}


def test_not_contains(db: sqlite3.Connection) -> None:
    """Dataverse filter-rows: `not contains(name,'x')` returns the rows whose name lacks x."""
    assert accounts(db, "not contains(name,'contoso')") == {A2, A3, A4}


def test_tolower_and_toupper(db: sqlite3.Connection) -> None:
    """OData URL conventions, tolower / toupper functions; comparisons stay case-insensitive
    as on the service."""
    assert accounts(db, "tolower(name) eq 'contoso ltd'") == {A1}
    assert accounts(db, "contains(toupper(name),toupper('brien'))") == {A2}


# --- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("msdyn_amount eq 100.01", {M1}),
        ("msdyn_amount eq 100.0100", {M1}),
        ("msdyn_amount eq 100.005", {M2}),
        ("msdyn_amount eq 100", {M3}),
        ("msdyn_amount eq 1e2", {M3}),
        ("msdyn_amount eq 100.00501", set()),
        ("msdyn_amount ne 100.00501", {M1, M2, M3, M5}),
        ("msdyn_amount gt 100.00501", {M1, M5}),
        ("msdyn_amount ge 100.00499", {M1, M2, M5}),
        ("msdyn_amount ge 100.00005", {M1, M2, M5}),
        ("msdyn_amount lt 100.00501", {M2, M3}),
        ("msdyn_amount le 100.00499", {M3}),
        ("msdyn_amount gt 100.005", {M1, M5}),
        ("msdyn_amount in (100.01, 100.00001, 250.5)", {M1, M5}),
        ("msdyn_amount eq 100.0050000000000000000000000000001", set()),
    ],
)
def test_money_comparisons_are_exact(db: sqlite3.Connection, text: str, expected: set) -> None:
    """Dataverse Money is a fixed-point decimal (4 places here): 100.01 equals 100.0100, differs
    from 100.005, and a literal with more places than stored is compared exactly, never as a
    float."""
    assert milestones(db, text) == expected


def test_negative_money_on_fno(db: sqlite3.Connection) -> None:
    """F&O OData: Edm.Decimal amounts (AmountCur) compare exactly, negative values included."""
    assert cust_trans(db, "AmountCur eq -100.5") == {5_000_000_001}
    assert cust_trans(db, "AmountCur lt -100.5") == {7}
    assert cust_trans(db, "AmountCur le -100.50005") == {7}


def test_bigint_values(db: sqlite3.Connection) -> None:
    """F&O OData: RecId is Edm.Int64; values beyond Int32 compare as integers."""
    assert cust_trans(db, "RecId ge 5000000001") == {5_000_000_001, 5_000_000_002}
    assert cust_trans(db, "RecId eq 7") == {7}


# --- dates and date-times ---------------------------------------------------------------------


def test_date_comparisons(db: sqlite3.Connection) -> None:
    """Dataverse date-only columns are Edm.Date and filter with an unquoted date literal."""
    assert milestones(db, "msdyn_invoicedate ge 2024-02-01 and msdyn_invoicedate lt 2024-03-01") == {M2, M3}
    assert milestones(db, "msdyn_invoicedate eq 2024-02-29") == {M3}


def test_datetime_offsets_are_converted_to_utc(db: sqlite3.Connection) -> None:
    """OData URL conventions, Comparison Operators: Edm.DateTimeOffset values compare as instants, so +02:00 is converted
    to UTC (02:00+02:00 is 00:00Z)."""
    assert fno_milestones(db, "TransactionDate eq 2024-02-01T02:00:00+02:00") == {"F2"}
    assert fno_milestones(db, "TransactionDate ge 2024-02-01T00:30:00+01:00") == {"F2", "F3", "F4"}
    assert fno_milestones(db, "TransactionDate gt 2024-01-31T17:30:00-05:00") == {"F2", "F3", "F4"}


def test_date_literal_against_datetime(db: sqlite3.Connection) -> None:
    """Dataverse / F&O (SQL date-time semantics): a date literal against Edm.DateTimeOffset means midnight UTC of that day."""
    assert fno_milestones(db, "TransactionDate lt 2024-02-01") == {"F1"}


def test_fractional_seconds(db: sqlite3.Connection) -> None:
    """OData 4.0 ABNF timeOfDayValue: fractional seconds are part of the instant; a zero
    fraction equals the whole second, a non-zero one lies between two whole seconds."""
    assert fno_milestones(db, "TransactionDate eq 2024-02-01T10:15:30.000Z") == {"F3"}
    assert fno_milestones(db, "TransactionDate eq 2024-02-01T10:15:30.5Z") == set()
    assert fno_milestones(db, "TransactionDate gt 2024-02-01T10:15:29.5Z") == {"F3", "F4"}
    assert fno_milestones(db, "TransactionDate le 2024-02-01T10:15:30.001Z") == {"F1", "F2", "F3"}


def test_invalid_date_literal(db: sqlite3.Connection) -> None:
    """OData 4.0 ABNF dateValue: the day must exist in the month."""
    assert "2024-02-30" in error("msdyn_invoicedate eq 2024-02-30", MILESTONES)


# --- GUIDs -------------------------------------------------------------------------------


def test_guid_literal_is_case_insensitive(db: sqlite3.Connection) -> None:
    """Dataverse filter-rows: lookups filter on `_x_value` with an unquoted GUID; GUIDs are
    case-insensitive values (Dataverse returns them lower-case)."""
    assert accounts(db, f"_transactioncurrencyid_value eq {EUR.upper()}") == {A1, A5}
    assert accounts(db, f"_transactioncurrencyid_value eq '{USD.upper()}'") == {A2}
    assert accounts(db, f"accountid in ({A1}, {A3.upper()})") == {A1, A3}
    assert accounts(db, f"_transactioncurrencyid_value ne {EUR}") == {A2}


# --- F&O enums -------------------------------------------------------------------------------

INVOICED_QUALIFIED = "Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'"


@pytest.mark.parametrize(
    "literal",
    [INVOICED_QUALIFIED, "ProjTransStatus'Invoiced'", "4", "'Invoiced'"],
)
def test_enum_literal_forms(db: sqlite3.Connection, literal: str) -> None:
    """F&O OData: enum values are filtered with the Namespace.EnumType'Member' literal; the bare
    type name, the member's integer value and the quoted member name are tolerated."""
    assert fno_milestones(db, f"TransStatus eq {literal}") == {"F1", "F4"}


def test_enum_in_list_and_ne(db: sqlite3.Connection) -> None:
    """F&O OData: enum literals work in every comparison, including `in` lists and `ne`."""
    assert fno_milestones(db, "TransStatus in (ProjTransStatus'Registered', ProjTransStatus'InvoiceProposal')") == {
        "F2",
        "F3",
    }
    assert fno_milestones(db, f"TransStatus ne {INVOICED_QUALIFIED}") == {"F2", "F3"}
    assert fno_milestones(db, f"TransStatus eq {INVOICED_QUALIFIED} and dataAreaId eq 'usmf'") == {"F1"}
    assert cust_trans(db, "TransType eq Microsoft.Dynamics.DataEntities.LedgerTransType'Sales'") == {5_000_000_001, 7}


def test_enum_literal_inside_a_string_is_just_text(db: sqlite3.Connection) -> None:
    """OData 4.0 ABNF: everything between the quotes of a string literal is data, even text
    that looks like an enum literal."""
    assert fno_milestones(db, "Description eq 'ProjTransStatus''Invoiced'''") == {"F3"}
    assert fno_milestones(db, "Description eq 'O''Brien milestone'") == {"F1"}


def test_wrong_enum_type_lists_valid_members() -> None:
    """F&O OData: an enum literal of another enum type does not match the property's type."""
    message = error("TransStatus eq Microsoft.Dynamics.DataEntities.LedgerTransType'Sales'", FNO_MILESTONES)
    assert "LedgerTransType'Sales'" in message
    assert "Microsoft.Dynamics.DataEntities.ProjTransStatus" in message
    for member in ("Registered (1)", "Posted (2)", "InvoiceProposal (3)", "Invoiced (4)"):
        assert member in message


@pytest.mark.parametrize("literal", ["ProjTransStatus'Paid'", "'Paid'", "9", "ProjTransStatus'invoiced'"])
def test_unknown_enum_member_lists_valid_members(literal: str) -> None:
    """F&O OData: only the members of the enum type are valid values."""
    message = error(f"TransStatus eq {literal}", FNO_MILESTONES)
    assert "not a member of Microsoft.Dynamics.DataEntities.ProjTransStatus" in message
    assert "Registered (1), Posted (2), InvoiceProposal (3), Invoiced (4)" in message


def test_enum_literal_against_a_string_property() -> None:
    """OData URL conventions, Comparison Operators: operands of a comparison must have compatible types."""
    message = error(f"Description eq {INVOICED_QUALIFIED}", FNO_MILESTONES)
    assert "'Edm.String'" in message and "'Description'" in message


# --- booleans ----------------------------------------------------------------------------

FLAGS = EntitySet(
    "dataverse",
    "simtestflags",
    "simtestflag",
    ("flagid",),
    (Field("flagid", Kind.STRING), Field("isactive", Kind.BOOL)),
)


def test_boolean_fields() -> None:
    """OData URL conventions, Logical Operators: Edm.Boolean properties compare with true / false and can stand alone
    as a condition."""
    conn = connect(":memory:")
    conn.execute(table_ddl(FLAGS))
    conn.executemany(
        'INSERT INTO "dv_simtestflags" VALUES (?, ?, 1, NULL, NULL)', [("on", 1), ("off", 0), ("unset", None)]
    )
    assert rows(conn, FLAGS, "isactive eq true", "flagid") == {"on"}
    assert rows(conn, FLAGS, "isactive eq false", "flagid") == {"off"}
    assert rows(conn, FLAGS, "isactive", "flagid") == {"on"}
    assert rows(conn, FLAGS, "not isactive", "flagid") == {"off"}
    assert rows(conn, FLAGS, "true", "flagid") == {"on", "off", "unset"}


# --- errors ------------------------------------------------------------------------------


def test_unknown_property_uses_dataverse_wording() -> None:
    """Dataverse Web API error for an unknown $filter property: 'Could not find a
    property named 'X' on type 'Microsoft.Dynamics.CRM.account'.'"""
    assert error("nosuchfield eq 1", ACCOUNTS) == (
        "Could not find a property named 'nosuchfield' on type 'Microsoft.Dynamics.CRM.account'."
    )
    assert error("Name eq 'x'", ACCOUNTS) == (
        "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."
    )
    assert error("sim_version eq 1", ACCOUNTS) == (
        "Could not find a property named 'sim_version' on type 'Microsoft.Dynamics.CRM.account'."
    )
    assert error("contains(Nope,'x')", FNO_MILESTONES) == (
        "Could not find a property named 'Nope' on type 'Microsoft.Dynamics.DataEntities.ProjectContractLineMilestone'."
    )


@pytest.mark.parametrize(
    ("text", "expected_fragment"),
    [
        ("name eq", "position"),
        ("name eq 'x' and", "position"),
        ("name eq 'unterminated", "position 8"),
        ("(name eq 'x'", "position"),
        ("name eq 'x' name", "position"),
        ("frobnicate(name) eq 'x'", "frobnicate"),
        ("contains(name)", "contains"),
        ("name eq 'x' ; drop", "position"),
    ],
)
def test_syntax_errors(text: str, expected_fragment: str) -> None:
    """ODataLib: a malformed $filter fails with 'Syntax error at position N in ...'."""
    message = error(text, ACCOUNTS)
    assert "Syntax error" in message
    assert expected_fragment in message


def test_type_mismatch_names_field_and_types() -> None:
    """ODataLib: 'A binary operator with incompatible types was detected. Found operand types
    'Edm.Int32' and 'Edm.String' for operator kind 'Equal'.'"""
    message = error("msdyn_invoicestatus eq 'Ready for invoicing'", MILESTONES)
    assert message.startswith("A binary operator with incompatible types was detected.")
    assert "'Edm.Int32' and 'Edm.String'" in message and "'msdyn_invoicestatus'" in message
    assert "'Edm.Decimal' and 'Edm.String'" in error("msdyn_amount gt '100'", MILESTONES)
    assert "'Edm.Guid' and 'Edm.Int32'" in error("accountid eq 5", ACCOUNTS)
    assert "'Edm.Guid' and 'Edm.String'" in error("accountid eq 'not-a-guid'", ACCOUNTS)
    assert "'Edm.Date' and 'Edm.DateTimeOffset'" in error("msdyn_invoicedate eq 2024-01-01T00:00:00Z", MILESTONES)
    assert "'Edm.String' and 'Edm.Int32'" in error("accountnumber eq 100", ACCOUNTS)
    assert "'Edm.Int32' and 'Edm.Decimal'" in error("msdyn_invoicestatus eq 1.5", MILESTONES)


@pytest.mark.parametrize(
    ("text", "expected_fragment"),
    [
        ("length(name) eq 3", "'length'"),
        ("msdyn_amount add 1 eq 2", "'add'"),
        ("contains(msdyn_amount,'1')", "'contains'"),
        ("msdyn_name eq msdyn_name", "property"),
        ("msdyn_invoicestatus eq 99999999999", "out of range"),
        ("msdyn_name", "single boolean value"),
        ("msdyn_amount eq 1e400", "out of range"),
    ],
)
def test_unsupported_constructs_are_rejected(text: str, expected_fragment: str) -> None:
    """Dataverse filter-rows: $filter supports comparison and logical operators and the
    contains / startswith / endswith functions; anything else is rejected, not ignored."""
    assert expected_fragment in error(text, MILESTONES)


# --- injection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "name eq 'x'' OR 1=1 --'",
        "name eq 'a\"); DROP TABLE dv_accounts; --'",
        "contains(name,''' OR ''1''=''1')",
    ],
)
def test_injection_attempt_is_just_data(db: sqlite3.Connection, text: str) -> None:
    """OWASP SQL injection prevention: literals are bound parameters, so hostile text only ever
    matches as data."""
    fragment, params = compile_filter(text, ACCOUNTS)
    assert "DROP" not in fragment and "1=1" not in fragment
    assert accounts(db, text) == set()
    assert db.execute('SELECT count(*) FROM "dv_accounts"').fetchone()[0] == 6


def test_injection_through_a_property_name_is_rejected() -> None:
    """OData 4.0 ABNF odataIdentifier: property names are identifiers, so quotes or semicolons
    cannot reach the SQL as a column name."""
    assert "Syntax error" in error('name" = name; DROP TABLE dv_accounts; -- eq 1', ACCOUNTS)
