"""Crockford base32 for generated codes and tokens: 32 symbols, no I, L, O or U, so a code
read aloud or copied by hand survives. On input O reads as 0, I and L as 1, case and
hyphens are ignored (https://www.crockford.com/base32.html)."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INPUT = str.maketrans({"O": "0", "I": "1", "L": "1"})
BITS_PER_SYMBOL = 5


def random_symbols(n: int) -> str:
    """n symbols from the CSPRNG (5 bits each)."""
    value = secrets.randbits(n * BITS_PER_SYMBOL)
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in range(n))


def canonical(text: str) -> str:
    """What a hand-typed code means: upper case, no hyphens or spaces, O->0, I/L->1."""
    return text.strip().upper().replace("-", "").replace(" ", "").translate(_INPUT)


def is_canonical(text: str) -> bool:
    """Only Crockford symbols (the form generated codes are stored in)."""
    return bool(text) and all(c in ALPHABET for c in text)
