"""core.money: decimal strings at the edges, integer minor units inside, half-up rounding,
largest-remainder allocation that always sums exactly."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.money import (
    MAX_MINOR,
    MoneyError,
    allocate,
    display,
    exponent,
    format_amount,
    parse_amount,
    percent_of,
)

# --- parse_amount -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("37.50", "USD", 3750),
        ("150.00", "USD", 15000),
        ("150", "USD", 15000),
        ("0.01", "USD", 1),
        ("0", "USD", 0),
        ("0.00", "USD", 0),
        (" 7.99 ", "USD", 799),
        ("10.010", "USD", 1001),  # a trailing zero is not a third digit
        ("1e2", "USD", 10000),
        (Decimal("150.00"), "USD", 15000),  # a JSON number, read as Decimal by the parser
        (Decimal("37.5"), "USD", 3750),
        (Decimal("0.1"), "EUR", 10),
        (5, "USD", 500),
        ("1000", "JPY", 1000),
        ("1000.0", "JPY", 1000),
        (Decimal("1000"), "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("1.5", "KWD", 1500),
        ("1.234", "BHD", 1234),
        ("12.34", "EUR", 1234),
        ("100000000000.00", "USD", MAX_MINOR),  # the largest accepted amount
    ],
)
def test_parse_amount_accepts(value, currency, expected):
    assert parse_amount(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency", "message_part"),
    [
        ("-1.00", "USD", "negative"),
        (Decimal("-0.01"), "USD", "negative"),
        (-1, "USD", "negative"),
        ("10.001", "USD", "at most 2 decimal places"),
        (Decimal("10.001"), "USD", "at most 2 decimal places"),
        ("0.5", "JPY", "at most 0 decimal places"),
        ("1000.1", "JPY", "at most 0 decimal places"),
        ("1.2345", "KWD", "at most 3 decimal places"),
        ("NaN", "USD", "finite"),
        ("nan", "USD", "finite"),
        ("sNaN", "USD", "finite"),
        ("Infinity", "USD", "finite"),
        ("-Infinity", "USD", "finite"),
        (Decimal("NaN"), "USD", "finite"),
        (Decimal("Infinity"), "USD", "finite"),
        ("1e30", "USD", "too large"),
        (Decimal("1E+30"), "USD", "too large"),
        ("100000000000.01", "USD", "too large"),
        ("1e999999", "USD", "too large"),  # beyond the decimal context's exponent range
        (Decimal("1E+999999"), "USD", "too large"),
        ("1e999999999", "JPY", "too large"),
        # more significant digits than the decimal context keeps: not silently rounded
        ("1.0000000000000000000000000000001", "USD", "at most 2 decimal places"),
        ("100000000000.000000000000000000001", "USD", "at most 2 decimal places"),
        ("1e-999999999", "USD", "at most 2 decimal places"),
        ("abc", "USD", "decimal string"),
        ("", "USD", "decimal string"),
        ("1,00", "USD", "decimal string"),
        ("$5", "USD", "decimal string"),
        (True, "USD", "decimal string"),
        (False, "USD", "decimal string"),
        (1.5, "USD", "decimal string"),  # a float is never money
        (None, "USD", "decimal string"),
        (["1.00"], "USD", "decimal string"),
        ({"amount": "1.00"}, "USD", "decimal string"),
        ("1.00", "XYZ", "Unknown currency"),
        ("1.00", "usd", "Unknown currency"),
    ],
)
def test_parse_amount_rejects(value, currency, message_part):
    with pytest.raises(MoneyError) as excinfo:
        parse_amount(value, currency)
    assert message_part in str(excinfo.value)


def test_money_error_is_a_value_error():
    assert issubclass(MoneyError, ValueError)


@pytest.mark.parametrize(
    ("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)]
)
def test_exponent(currency, digits):
    assert exponent(currency) == digits


def test_exponent_unknown_currency():
    with pytest.raises(MoneyError):
        exponent("XYZ")


# --- format_amount / display ------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (3750, "USD", "37.50"),
        (0, "USD", "0.00"),
        (5, "USD", "0.05"),
        (100, "USD", "1.00"),
        (123456789, "USD", "1234567.89"),
        (-5, "USD", "-0.05"),
        (-3750, "USD", "-37.50"),
        (1000, "JPY", "1000"),
        (0, "JPY", "0"),
        (1234, "KWD", "1.234"),
        (5, "KWD", "0.005"),
    ],
)
def test_format_amount(minor, currency, expected):
    assert format_amount(minor, currency) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (5000, "USD", "$50.00"),
        (1000, "EUR", "€10.00"),
        (1000, "JPY", "¥1000"),
        (1234, "KWD", "KWD 1.234"),
        (999, "CHF", "CHF 9.99"),
    ],
)
def test_display(minor, currency, expected):
    assert display(minor, currency) == expected


@settings(max_examples=200, deadline=None)
@given(
    minor=st.integers(min_value=0, max_value=MAX_MINOR),
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR"]),
)
def test_format_then_parse_round_trips(minor, currency):
    assert parse_amount(format_amount(minor, currency), currency) == minor


# --- percent_of (half-up) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (15000, 2500, 3750),  # $150 at 25% = $37.50
        (40000, 2500, 10000),
        (1, 5000, 1),  # 0.5 cent rounds up
        (1, 4999, 0),  # 0.4999 cent rounds down
        (3, 5000, 2),  # 1.5 -> 2
        (5, 1000, 1),  # 0.5 -> 1
        (3, 3333, 1),  # 0.9999 -> 1
        (1000, 3333, 333),  # 33.33% of $10.00 = 333.3 -> $3.33
        (1000, 3335, 334),  # 333.5 -> 334 (half-up, not banker's)
        (1000, 3345, 335),  # 334.5 -> 335 (half-up even when the unit is even)
        (999, 1000, 100),  # 99.9 -> 100
        (0, 2500, 0),
        (12345, 0, 0),
        (12345, 10_000, 12345),
        (MAX_MINOR, 10_000, MAX_MINOR),
    ],
)
def test_percent_of_rounds_half_up(amount, bp, expected):
    assert percent_of(amount, bp) == expected


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=MAX_MINOR),
    bp=st.integers(min_value=0, max_value=10_000),
)
def test_percent_of_matches_decimal_half_up(amount, bp):
    from decimal import ROUND_HALF_UP

    exact = Decimal(amount) * Decimal(bp) / Decimal(10_000)
    assert percent_of(amount, bp) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert 0 <= percent_of(amount, bp) <= amount


# --- allocate (largest remainder) -------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (1000, [1000, 1000, 1000], [334, 333, 333]),  # ties: the earlier line gets the cent
        (2, [1, 1, 1], [1, 1, 0]),
        (1, [5, 5], [1, 0]),
        (100, [1, 1, 1], [34, 33, 33]),
        (3, [1, 2], [1, 2]),
        (10, [3, 7], [3, 7]),
        (7, [1, 2, 4], [1, 2, 4]),
        (5, [2, 3, 5], [1, 2, 2]),  # exact 1, 1.5, 2.5: remainders tie, earlier first
        (3750, [15000], [3750]),
        (6, [0, 10, 0, 20], [0, 2, 0, 4]),  # a zero weight never gets anything
        (1, [1, 3], [0, 1]),  # the larger remainder wins (0.25 vs 0.75)
        (0, [5, 5], [0, 0]),
        (5, [0, 0], [0, 0]),
        (5, [], []),
    ],
)
def test_allocate(total, weights, expected):
    assert allocate(total, weights) == expected


def test_allocate_rejects_negative_total():
    with pytest.raises(ValueError, match="total must be non-negative"):
        allocate(-1, [1, 2])


def test_allocate_never_exceeds_weight_when_total_equals_sum():
    assert allocate(6, [1, 2, 3]) == [1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_allocate_properties(data, weights):
    weight_sum = sum(weights)
    total = data.draw(st.integers(min_value=0, max_value=weight_sum), label="total")
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert 0 <= part <= weight
        # largest remainder: every part is the floor or the ceiling of its exact share
        exact_floor = total * weight // weight_sum
        assert part in (exact_floor, exact_floor + 1)
    assert allocate(total, weights) == parts  # deterministic


@settings(max_examples=100, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20),
)
def test_allocate_sums_exactly_even_above_the_weights(total, weights):
    assert sum(allocate(total, weights)) == total
