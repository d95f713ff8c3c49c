"""Translate an OData ``$filter`` into a parameterised SQLite WHERE fragment for one entity set.

The rehearsal simulator stands in for the Dataverse Web API and Finance and Operations OData,
so the translation follows those services, not SQLite:

- The expression is tokenised and parsed by ``odata-query`` (``ODataLexer`` / ``ODataParser``).
  Before parsing, a small rewrite of the *token stream* (never of the text) adds three things
  the services accept and odata-query's grammar does not:
  F&O enum literals ``Microsoft.Dynamics.DataEntities.ProjTransStatus'Invoiced'`` (the lexer
  reads them as an identifier immediately followed by a string, which is merged into one
  :class:`EnumLiteral`), ``not(...)`` without a space, and one-element lists ``X in ('a')``.
- Only fields of the entity set are allowed; anything else fails with Dataverse's wording
  ``Could not find a property named 'X' on type '<namespace>.<type>'.``
- String comparisons are case-insensitive (``COLLATE NOCASE``; ``LIKE`` is already
  case-insensitive for ASCII), as on both services.
- A comparison whose operand is null evaluates to null and the row is not returned (Dataverse:
  "Records aren't included if the expression evaluates to false or null"); SQL's
  three-valued logic gives exactly that, so ``ne`` never returns rows where the field is null.
- Money is stored as an integer number of 1/10,000 (``MONEY_SCALE``) and compared exactly:
  a literal with more than four decimals can never be equal to a stored value, and ordering
  comparisons use the neighbouring storable values. Date-times are stored as whole-second
  UTC text (schema convention), so a literal with fractional seconds is handled the same way.
- Every literal reaches SQL as a ``?`` parameter; column names come from the schema only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, Inexact, localcontext

from odata_query import ast
from odata_query.exceptions import (
    FunctionCallException,
    ODataException,
    ParsingException,
    TokenizingException,
    UnknownFunctionException,
)
from odata_query.grammar import ODataLexer, ODataParser
from sly.lex import Token

from .schema import EDM_TYPES, MONEY_SCALE, EntitySet, Field, Kind

__all__ = ["EnumLiteral", "FilterError", "compile_filter"]

SqlValue = int | str


class FilterError(ValueError):
    """A $filter the service rejects; str(e) is the user-facing message."""


@dataclass(frozen=True)
class EnumLiteral(ast._Literal):
    """An F&O enum literal ``Namespace.EnumType'Member'`` (or ``EnumType'Member'``)."""

    type_name: str  # as written: qualified or bare
    member: str

    @property
    def written(self) -> str:
        return f"{self.type_name}'{self.member}'"


def compile_filter(text: str, entity: EntitySet) -> tuple[str, list]:
    """Return (sql_fragment, params) for use as `WHERE <sql_fragment>` with `?` placeholders."""
    tree = _parse(text)
    translator = _Translator(entity)
    sql = translator.condition(tree)
    return sql, translator.params


# --- parsing ------------------------------------------------------------------------------

_LITERAL_TOKENS = frozenset(
    {"NULL", "INTEGER", "DECIMAL", "STRING", "GUID", "DATE", "DATETIME", "BOOLEAN", "TIME", "DURATION"}
)


def _parse(text: str) -> ast._Node:
    if not text.strip():
        raise FilterError("Syntax error: the $filter expression is empty.")
    try:
        tokens = list(ODataLexer().tokenize(text))
        tree = ODataParser().parse(iter(_rewrite_tokens(tokens)))
    except TokenizingException as exc:
        position = exc.token.index
        raise FilterError(
            f"Syntax error: character '{text[position]}' is not valid at position {position} in '{text}'."
        ) from None
    except ParsingException as exc:
        if exc.token is None:
            raise FilterError(
                f"Syntax error at position {len(text)} in '{text}': the expression ends unexpectedly."
            ) from None
        position = exc.token.index
        raise FilterError(
            f"Syntax error at position {position} in '{text}' near '{text[position : position + 20]}'."
        ) from None
    except UnknownFunctionException as exc:
        raise FilterError(f"Syntax error in '{text}': unknown function '{exc.function_name}'.") from None
    except FunctionCallException as exc:
        raise FilterError(f"Syntax error in '{text}': {exc}") from None
    except ODataException as exc:
        raise FilterError(f"Syntax error in '{text}': {exc}") from None
    if tree is None:
        raise FilterError(f"Syntax error in '{text}': no expression.")
    return tree


def _make_token(type_: str, value: object, index: int) -> Token:
    token = Token()
    token.type = type_
    token.value = value
    token.lineno = 1
    token.index = index
    return token


def _rewrite_tokens(tokens: list[Token]) -> Iterator[Token]:
    """Adapt odata-query's token stream to what Dataverse and F&O accept.

    - leading / trailing whitespace is dropped;
    - an identifier immediately followed by a string literal (``ProjTransStatus'Invoiced'``)
      becomes one enum literal;
    - ``not(`` becomes the ``not`` operator (ODataLib accepts it without a space);
    - ``in (<literal>)`` gets the trailing comma odata-query needs for a one-element list.
    """
    while tokens and tokens[0].type == "WS":
        tokens = tokens[1:]
    while tokens and tokens[-1].type == "WS":
        tokens = tokens[:-1]

    merged: list[Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.type == "ODATA_IDENTIFIER" and following is not None:
            name = token.value.full_name()
            if following.type == "STRING" and following.index == token.index + len(name):
                merged.append(_make_token("STRING", EnumLiteral(name, following.value.val), token.index))
                i += 2
                continue
            if following.type == "(" and not token.value.namespace and name.lower() == "not":
                merged.append(_make_token("NOT", ast.Not(), token.index))
                i += 1
                continue
        merged.append(token)
        i += 1

    yield from _single_element_lists(merged)


def _single_element_lists(tokens: list[Token]) -> Iterable[Token]:
    significant = [(i, t) for i, t in enumerate(tokens) if t.type != "WS"]
    insert_before: set[int] = set()
    for n in range(len(significant) - 3):
        (_, op), (_, opening), (_, item), (closing_at, closing) = significant[n : n + 4]
        if op.type == "IN" and opening.type == "(" and item.type in _LITERAL_TOKENS and closing.type == ")":
            insert_before.add(closing_at)
    for i, token in enumerate(tokens):
        if i in insert_before:
            yield _make_token(",", ",", token.index)
        yield token


# --- translation --------------------------------------------------------------------------

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MONEY_LIMIT = Decimal(2**63) / MONEY_SCALE  # magnitude beyond which the scaled value overflows

_SQL_OPERATORS: dict[type, tuple[str, str]] = {  # comparator -> (SQL, ODataLib operator kind)
    ast.Eq: ("=", "Equal"),
    ast.NotEq: ("<>", "NotEqual"),
    ast.Gt: (">", "GreaterThan"),
    ast.GtE: (">=", "GreaterThanOrEqual"),
    ast.Lt: ("<", "LessThan"),
    ast.LtE: ("<=", "LessThanOrEqual"),
    ast.In: ("IN", "In"),
}
_MIRRORED: dict[type, ast._Comparator] = {
    ast.Eq: ast.Eq(),
    ast.NotEq: ast.NotEq(),
    ast.Gt: ast.Lt(),
    ast.GtE: ast.LtE(),
    ast.Lt: ast.Gt(),
    ast.LtE: ast.GtE(),
}
_ARITHMETIC = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Mod: "mod"}
_LIKE_FUNCTIONS = {"contains": ("%", "%"), "startswith": ("", "%"), "endswith": ("%", "")}
_CASE_FUNCTIONS = frozenset({"tolower", "toupper"})
_LITERAL_TYPES: dict[type, str] = {
    ast.String: "Edm.String",
    ast.GUID: "Edm.Guid",
    ast.Date: "Edm.Date",
    ast.DateTime: "Edm.DateTimeOffset",
    ast.Time: "Edm.TimeOfDay",
    ast.Duration: "Edm.Duration",
    ast.Boolean: "Edm.Boolean",
    ast.Float: "Edm.Decimal",
    ast.Geography: "Edm.Geography",
    ast.List: "Collection",
}


@dataclass(frozen=True)
class _Between:
    """A literal that lies strictly between two adjacent storable values (below < literal < above).

    ``exact`` is the literal's own stored form when the column could in principle hold it
    (fractional-second date-times); None when no stored value can equal it (sub-unit money).
    """

    below: SqlValue
    above: SqlValue
    exact: str | None = None


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _field_type(field: Field) -> str:
    if field.kind is Kind.ENUM and field.enum is not None:
        return field.enum.qualified
    return EDM_TYPES[field.kind]


def _literal_type(literal: ast._Node) -> str:
    if isinstance(literal, EnumLiteral):
        return literal.type_name
    if isinstance(literal, ast.Integer):
        return "Edm.Int32" if _INT32[0] <= literal.py_val <= _INT32[1] else "Edm.Int64"
    return _LITERAL_TYPES.get(type(literal), type(literal).__name__)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Translator:
    def __init__(self, entity: EntitySet) -> None:
        self.entity = entity
        self.params: list[SqlValue] = []

    # boolean structure

    def condition(self, node: ast._Node) -> str:
        if isinstance(node, ast.BoolOp):
            joiner = "AND" if isinstance(node.op, ast.And) else "OR"
            return f"({self.condition(node.left)} {joiner} {self.condition(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(NOT {self.condition(node.operand)})"
        if isinstance(node, ast.Compare):
            return self.comparison(node)
        if isinstance(node, ast.Call) and node.func.full_name() in _LIKE_FUNCTIONS:
            return self.like(node)
        if isinstance(node, ast.Boolean):
            return "1" if node.py_val else "0"
        if isinstance(node, ast.Identifier):
            field = self.field(node)
            if field.kind is Kind.BOOL:
                return f"({_quote(field.name)} = 1)"
        self.property_or_none(node)  # raises the specific error for unsupported constructs
        raise FilterError("The $filter expression must evaluate to a single boolean value.")

    # operands

    def field(self, identifier: ast.Identifier) -> Field:
        name = identifier.full_name()
        field = self.entity.by_name.get(name)
        if field is None or name.startswith("sim_"):
            raise FilterError(f"Could not find a property named '{name}' on type '{self.entity.qualified_type}'.")
        return field

    def property_or_none(self, node: ast._Node) -> Field | None:
        """The field an operand refers to (through tolower/toupper), None for a literal."""
        if isinstance(node, ast.Identifier):
            return self.field(node)
        if isinstance(node, ast._Literal):
            return None
        if isinstance(node, ast.Call):
            name = node.func.full_name()
            if name in _CASE_FUNCTIONS:
                inner = self.property_or_none(node.args[0])
                if inner is None:
                    return None
                if inner.kind is not Kind.STRING:
                    raise FilterError(self._signature_error(name, inner, "(Edm.String Nullable=true)"))
                return inner
            if name in _LIKE_FUNCTIONS:
                raise FilterError(
                    f"The function '{name}' returns Edm.Boolean; use it directly as a condition "
                    f"(for example 'not {name}(...)') instead of comparing its result."
                )
            raise FilterError(
                f"The function '{name}' is not supported in $filter by this service; "
                "supported functions are contains, startswith, endswith, tolower and toupper."
            )
        if isinstance(node, ast.BinOp):
            raise FilterError(f"The arithmetic operator '{_ARITHMETIC[type(node.op)]}' is not supported in $filter.")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            raise FilterError(
                "The arithmetic negation operator '-' is not supported in $filter; write a negative literal."
            )
        if isinstance(node, (ast.Attribute, ast.CollectionLambda)):
            raise FilterError("Navigation paths and lambda operators (any/all) are not supported in this $filter.")
        if isinstance(node, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
            raise FilterError("A boolean expression cannot be used as a comparison operand in $filter.")
        raise FilterError(f"Unsupported $filter expression: {type(node).__name__}.")

    def literal_value(self, node: ast._Node) -> ast._Literal:
        """Fold tolower/toupper around a literal; anything else must already be a literal."""
        if isinstance(node, ast.Call) and node.func.full_name() in _CASE_FUNCTIONS:
            inner = self.literal_value(node.args[0])
            if not isinstance(inner, ast.String):
                raise FilterError(f"The function '{node.func.full_name()}' takes a string argument.")
            folded = inner.val.lower() if node.func.full_name() == "tolower" else inner.val.upper()
            return ast.String(folded)
        if isinstance(node, ast._Literal):
            return node
        self.property_or_none(node)
        raise FilterError("Comparing a property with another property is not supported in this $filter.")

    # comparisons

    def comparison(self, node: ast.Compare) -> str:
        comparator = node.comparator
        left_field = self.property_or_none(node.left)
        if isinstance(comparator, ast.In):
            if left_field is None:
                raise FilterError("The left operand of 'in' must be a property.")
            return self.membership(left_field, node.right)
        right_field = self.property_or_none(node.right)
        if left_field is not None and right_field is not None:
            raise FilterError(
                f"Comparing property '{left_field.name}' with property '{right_field.name}' "
                "is not supported in this $filter."
            )
        if left_field is None and right_field is None:
            raise FilterError("A comparison in $filter must have a property on one side.")
        if left_field is None:
            assert right_field is not None
            field, literal_node, comparator = right_field, node.left, _MIRRORED[type(comparator)]
        else:
            field, literal_node = left_field, node.right
        literal = self.literal_value(literal_node)
        sql_op, op_kind = _SQL_OPERATORS[type(comparator)]
        column = _quote(field.name)

        if isinstance(literal, ast.Null):
            if isinstance(comparator, ast.Eq):
                return f"({column} IS NULL)"
            if isinstance(comparator, ast.NotEq):
                return f"({column} IS NOT NULL)"
            return "0"  # an ordering comparison with null is never true

        value = self.convert(field, literal, op_kind)
        if field.kind is Kind.STRING:
            column += " COLLATE NOCASE"
        if isinstance(value, _Between):
            if isinstance(comparator, (ast.Eq, ast.NotEq)):
                if value.exact is None:
                    return "0" if isinstance(comparator, ast.Eq) else f"({column} IS NOT NULL)"
                return self.bind(column, sql_op, value.exact)
            if isinstance(comparator, (ast.Gt, ast.GtE)):
                return self.bind(column, ">=", value.above)
            return self.bind(column, "<=", value.below)
        return self.bind(column, sql_op, value)

    def bind(self, column: str, sql_op: str, value: SqlValue) -> str:
        self.params.append(value)
        return f"({column} {sql_op} ?)"

    def membership(self, field: Field, items: ast._Node) -> str:
        if not isinstance(items, ast.List):
            raise FilterError("The right operand of 'in' must be a parenthesised list of literals.")
        column = _quote(field.name)
        include_null = False
        values: list[SqlValue] = []
        for item in items.val:
            literal = self.literal_value(item)
            if isinstance(literal, ast.Null):
                include_null = True
                continue
            value = self.convert(field, literal, "In")
            if isinstance(value, _Between):
                if value.exact is not None:
                    values.append(value.exact)
                continue  # no stored value can equal it
            values.append(value)
        parts = []
        if include_null:
            parts.append(f"{column} IS NULL")
        if values:
            collate = " COLLATE NOCASE" if field.kind is Kind.STRING else ""
            self.params.extend(values)
            parts.append(f"{column}{collate} IN ({', '.join('?' for _ in values)})")
        return "(" + " OR ".join(parts) + ")" if parts else "0"

    def like(self, call: ast.Call) -> str:
        name = call.func.full_name()
        subject, pattern_node = call.args
        field = self.property_or_none(subject)
        if field is None:
            raise FilterError(f"The first argument of '{name}' must be a property.")
        if field.kind is not Kind.STRING:
            raise FilterError(
                self._signature_error(name, field, "(Edm.String Nullable=true, Edm.String Nullable=true)")
            )
        pattern = self.literal_value(pattern_node)
        if not isinstance(pattern, ast.String):
            raise FilterError(
                f"The second argument of '{name}' must be a string literal, not {_literal_type(pattern)}."
            )
        prefix, suffix = _LIKE_FUNCTIONS[name]
        self.params.append(prefix + _escape_like(pattern.val) + suffix)
        return f"({_quote(field.name)} LIKE ? ESCAPE '\\')"

    # literal conversion

    def convert(self, field: Field, literal: ast._Literal, op_kind: str) -> SqlValue | _Between:
        kind = field.kind
        if kind is Kind.STRING and isinstance(literal, ast.String):
            return literal.val
        if kind is Kind.GUID:
            if isinstance(literal, ast.GUID):
                return str(uuid.UUID(literal.val))
            if isinstance(literal, ast.String) and _is_guid_text(literal.val):
                return str(uuid.UUID(literal.val))
        if kind in (Kind.INT, Kind.BIGINT, Kind.OPTION) and isinstance(literal, ast.Integer):
            return self._integer(field, literal.py_val)
        if kind is Kind.MONEY and isinstance(literal, (ast.Integer, ast.Float)):
            return self._money(field, literal.val)
        if kind is Kind.DATE and isinstance(literal, ast.Date):
            return _date_text(literal.val)
        if kind is Kind.DATETIME and isinstance(literal, ast.Date):
            return _date_text(literal.val) + "T00:00:00Z"
        if kind is Kind.DATETIME and isinstance(literal, ast.DateTime):
            return _datetime_value(literal.val)
        if kind is Kind.BOOL and isinstance(literal, ast.Boolean):
            return 1 if literal.py_val else 0
        if kind is Kind.ENUM and isinstance(literal, (EnumLiteral, ast.Integer, ast.String)):
            return self._enum(field, literal)
        raise FilterError(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{_field_type(field)}' and '{_literal_type(literal)}' for operator kind '{op_kind}' "
            f"(property '{field.name}')."
        )

    def _integer(self, field: Field, value: int) -> int:
        low, high = _INT64 if field.kind is Kind.BIGINT else _INT32
        if not low <= value <= high:
            raise FilterError(
                f"The value {value} is out of range for property '{field.name}' of type '{_field_type(field)}'."
            )
        return value

    def _money(self, field: Field, text: str) -> int | _Between:
        number = Decimal(text)
        if number.copy_abs() >= _MONEY_LIMIT:
            raise FilterError(f"The value {text} is out of range for property '{field.name}' of type 'Edm.Decimal'.")
        with localcontext() as context:
            context.prec = len(number.as_tuple().digits) + 6  # room for the exact product
            context.traps[Inexact] = True
            scaled = number * MONEY_SCALE
        below = int(scaled.to_integral_value(rounding=ROUND_FLOOR))
        above = int(scaled.to_integral_value(rounding=ROUND_CEILING))
        if below == above:
            return below
        return _Between(below, above)

    def _enum(self, field: Field, literal: ast._Literal) -> int:
        enum = field.enum
        assert enum is not None, f"ENUM field {field.name} has no EnumType"
        valid = ", ".join(f"{member} ({number})" for member, number in enum.members.items())
        hint = f"Valid members of {enum.qualified}: {valid}."
        if isinstance(literal, ast.Integer):
            if literal.py_val in enum.members.values():
                return literal.py_val
            raise FilterError(
                f"The value {literal.val} is not a member of {enum.qualified} (property '{field.name}'). {hint}"
            )
        if isinstance(literal, EnumLiteral):
            if literal.type_name not in (enum.qualified, enum.name):
                raise FilterError(
                    f"The enum literal {literal.written} does not match property '{field.name}' "
                    f"of type '{enum.qualified}'. {hint}"
                )
            member = literal.member
        else:
            assert isinstance(literal, ast.String)
            member = literal.val
        if member in enum.members:
            return enum.members[member]
        raise FilterError(f"'{member}' is not a member of {enum.qualified} (property '{field.name}'). {hint}")

    @staticmethod
    def _signature_error(function: str, field: Field, signature: str) -> str:
        return (
            f"No function signature for the function with name '{function}' matches the specified "
            f"arguments. The function signatures considered are: {function}{signature}. "
            f"Property '{field.name}' is {_field_type(field)}."
        )


def _is_guid_text(text: str) -> bool:
    if len(text) != 36 or [i for i, c in enumerate(text) if c == "-"] != [8, 13, 18, 23]:
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _date_text(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise FilterError(f"'{text}' is not a valid Edm.Date literal.") from None


def _datetime_value(text: str) -> str | _Between:
    """UTC text ``YYYY-MM-DDTHH:MM:SS[.f]Z`` of a DateTimeOffset literal.

    Stored date-times are whole seconds, so a literal with a non-zero fraction becomes a
    :class:`_Between` of the two whole seconds around it (its exact text kept for eq / ne).
    """
    fraction = ""
    dot = text.find(".")
    whole = text
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        fraction = text[dot + 1 : end].rstrip("0")
        whole = text[:dot] + text[end:]
    try:
        moment = dt.datetime.fromisoformat(whole)
    except ValueError:
        raise FilterError(f"'{text}' is not a valid Edm.DateTimeOffset literal.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    second = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not fraction:
        return second + "Z"
    next_second = (moment + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    return _Between(second + "Z", next_second + "Z", exact=f"{second}.{fraction}Z")
