"""Exact decimal numbers at DynamoDB's precision: the one arithmetic context of values, counts' sums and targets.

Python's default decimal context keeps 28 significant digits, so `1000000000000000000000000000000.5 + 0.25` would
come out as `1E+30`. DynamoDB keeps 38 digits, with magnitudes from 1E-130 to 9.99...E+125 ("Number" in the
DynamoDB Developer Guide, "Supported data types and naming rules"). Every sum goes through `add` here: exact while
the result fits 38 significant digits; beyond that (see docs/rules.md, "Sums"):
- a result that needs more than 38 significant digits is rounded to 38, half to even, as DynamoDB's own
  arithmetic (an `ADD` update) would;
- a result beyond DynamoDB's largest magnitude is held at the largest storable number of its sign (saturated),
  so it can still be stored and compared ("greater than 1e125" stays true);
- a non-zero result below the smallest magnitude (1E-130) becomes 0, the nearest number DynamoDB can store.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation

# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
DYNAMODB_DIGITS = 38
DYNAMODB_MIN_EXPONENT = -130  # of a number's most significant digit (Decimal.adjusted())
DYNAMODB_MAX_EXPONENT = 125
LARGEST = Decimal(f"{'9' * DYNAMODB_DIGITS}E{DYNAMODB_MAX_EXPONENT - DYNAMODB_DIGITS + 1}")  # 9.99...E+125
SMALLEST = Decimal(f"1E{DYNAMODB_MIN_EXPONENT}")
# A double holds every decimal of at most 15 significant digits exactly (DBL_DIG): the most a fractional
# number may have to travel as a JSON number without losing a digit.
FLOAT_DIGITS = 15

# Overflow and underflow are not trapped: `storable` turns their results into the saturated or zero value.
CONTEXT = Context(
    prec=DYNAMODB_DIGITS,
    rounding=ROUND_HALF_EVEN,
    Emax=DYNAMODB_MAX_EXPONENT,
    Emin=DYNAMODB_MIN_EXPONENT,
    traps=[InvalidOperation, DivisionByZero],
)


def add(left: Decimal, right: Decimal) -> Decimal:
    """`left + right` at 38 digits, saturated at DynamoDB's bounds (never an error for finite numbers)."""
    return storable(CONTEXT.add(left, right))


def total(values: Iterable[Decimal]) -> Decimal:
    result = Decimal(0)
    for value in values:
        result = add(result, value)
    return result


def storable(value: Decimal) -> Decimal:
    """The nearest number DynamoDB can store: infinities (overflow) to the largest magnitude, tiny values to 0."""
    if value.is_infinite():
        return LARGEST.copy_sign(value)
    if value and value.copy_abs() < SMALLEST:
        return Decimal(0)
    return value


def significant_digits(value: Decimal) -> int:
    """Digits from the first non-zero one to the last non-zero one (`1.500` and `1500` have 2)."""
    digits = value.as_tuple().digits
    text = "".join(map(str, digits)).strip("0")
    return len(text)


def is_storable(value: Decimal) -> bool:
    """Whether DynamoDB stores `value` exactly: finite, at most 38 significant digits, within its magnitudes."""
    if not value.is_finite():
        return False
    if not value:
        return True
    return significant_digits(value) <= DYNAMODB_DIGITS and SMALLEST <= value.copy_abs() <= LARGEST


def to_decimal(value: int | float | str | Decimal) -> Decimal:
    """Exact decimal of a parsed number: floats go through their shortest repr, so 19.99 stays 19.99."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def json_number(value: Decimal | int) -> int | float | str:
    """A decimal for JSON without losing a digit: a whole number as an integer, a fraction as a float when the
    float reads back as the same decimal, else (more digits than a double holds) its exact decimal text."""
    if isinstance(value, int):
        return value
    if value.is_finite() and value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if value.is_finite() and Decimal(repr(as_float)) == value:
        return as_float
    return str(value)
