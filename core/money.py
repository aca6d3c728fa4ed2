"""Money: integer minor units with an ISO-4217 currency.

Everything in the engine is an `int` of minor units. Decimal strings exist only at the
edges: `parse_amount` turns API input into minor units, `format_amount` turns minor units
back into the API's decimal strings. Rounding is half-up to the minor unit; allocation
across lines uses the largest-remainder method so the parts always sum to the whole.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# Active ISO-4217 codes; all use two minor digits except those listed below.
_CODES = (  # noqa: SIM905 - one readable block of codes
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY "
    "KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP "
    "MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR "
    "RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT "
    "TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW "
    "ZWL"
).split()
_ZERO_DIGIT = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
_THREE_DIGIT = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
CURRENCIES: dict[str, int] = {
    c: (0 if c in _ZERO_DIGIT else 3 if c in _THREE_DIGIT else 2) for c in _CODES
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}

# Largest amount accepted anywhere (in minor units): far above any real cart, far below
# the 64-bit column limit, so sums of many lines can never overflow BigIntegerField.
MAX_MINOR = 10**13


class MoneyError(ValueError):
    """Raised for an amount or currency the API cannot accept; the message is user-facing."""


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def exponent(currency: str) -> int:
    try:
        return CURRENCIES[currency]
    except KeyError:
        raise MoneyError(f"Unknown currency '{currency}'.") from None


def to_major(minor: int, currency: str) -> Decimal:
    """Integer minor units -> the Decimal amount in major units (1999 USD -> 19.99)."""
    return Decimal(minor).scaleb(-exponent(currency))


def chart_point(value: Decimal | int) -> float:
    """A value as a point for the admin's charts (Chart.js draws JSON numbers): the one
    place a Decimal becomes a float. Only drawn, never stored, summed or shown as text;
    every figure on a page is formatted from the integer or the Decimal."""
    return float(value)


def parse_amount(value: object, currency: str) -> int:
    """Decimal string or JSON number (already a Decimal, never a float) -> minor units."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise MoneyError('Enter an amount as a decimal string such as "37.50".')
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise MoneyError('Enter an amount as a decimal string such as "37.50".') from None
    if not amount.is_finite():
        raise MoneyError("Enter a finite amount.")
    if amount < 0:
        raise MoneyError("The amount must not be negative.")
    if amount.adjusted() > 15:  # checked before scaling: 1e999999 would overflow Decimal
        raise MoneyError("The amount is too large.")
    digits = exponent(currency)
    places = amount.as_tuple().exponent
    if not isinstance(places, int):  # never for a finite amount (checked above)
        raise MoneyError("Enter a finite amount.")
    if -places > digits and amount != amount.quantize(
        Decimal(1).scaleb(-digits), rounding="ROUND_DOWN"
    ):
        raise MoneyError(f"{currency} amounts have at most {digits} decimal places.")
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise MoneyError(f"{currency} amounts have at most {digits} decimal places.")
    if minor > MAX_MINOR:
        raise MoneyError("The amount is too large.")
    return int(minor)


def format_amount(minor: int, currency: str) -> str:
    """Minor units -> the API's decimal string ("37.50", "1000" for JPY)."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


def display(minor: int, currency: str) -> str:
    """Human form for messages: "$50.00", "EUR 10.00"."""
    symbol = _SYMBOLS.get(currency)
    text = format_amount(minor, currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"


def percent_of(amount_minor: int, basis_points: int) -> int:
    """amount * bp / 10_000, rounded half-up to the minor unit (non-negative inputs)."""
    return (amount_minor * basis_points + 5_000) // 10_000


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` across `weights` in proportion, largest remainder, summing exactly.

    Ties in the remainder go to the earlier line so the result is deterministic. With
    `total <= sum(weights)` no part exceeds its weight.
    """
    if total < 0:
        raise ValueError("total must be non-negative")
    weight_sum = sum(weights)
    if weight_sum <= 0 or total == 0:
        return [0] * len(weights)
    parts = []
    remainders = []
    for index, weight in enumerate(weights):
        share, rem = divmod(total * weight, weight_sum)
        parts.append(share)
        remainders.append((-rem, index))
    left = total - sum(parts)
    for _, index in sorted(remainders)[:left]:
        parts[index] += 1
    return parts
