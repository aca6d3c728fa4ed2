"""The request every promotions benchmark sends (bench/promotions.py in-process,
bench/promotions_http.py over HTTP): a 20-line USD cart over three of the 50 categories
bench/promotions_seed.sql uses, the three typed codes, and a customer drawn from the
seeded bp-u-1..bp-u-2000. Plain Python (no Django) so the HTTP client can import it."""

from __future__ import annotations

import json
import random

CODES = ["BP-SAVE15", "BP-FIVE", "BP-SHIP"]
CATEGORIES = (15, 29, 45)  # cat-15 (7 lines), cat-29 (7 lines), cat-45 (6 lines)
CUSTOMERS = 2000
SHIPPING = "7.99"
PATH = "/api/v1/promotions/evaluate"


def items() -> list[dict]:
    """20 lines; SKU k belongs to category ((k - 1) % 50) + 1, as in the seed."""
    out = []
    for i in range(20):
        category = CATEGORIES[i % 3]
        sku = category + 50 * (i // 3)
        cents = 299 + (i * 1373) % 2700  # $2.99 .. $29.98
        out.append(
            {
                "sku": f"BSKU-{sku:04d}",
                "category": f"cat-{category:02d}",
                "unit_price": f"{cents // 100}.{cents % 100:02d}",
                "quantity": 1 + (i * 7) % 2,
            }
        )
    return out


def cart() -> dict:
    return {"currency": "USD", "items": items(), "shipping": SHIPPING}


def customer_id(rng: random.Random) -> str:
    return f"bp-u-{rng.randint(1, CUSTOMERS)}"


def body_parts() -> tuple[bytes, bytes]:
    """(prefix, suffix) of the JSON body; the customer id goes in between."""
    rest = json.dumps({"cart": cart(), "coupon_codes": CODES}, separators=(",", ":"))
    return b'{"customer":{"id":"', ('"},' + rest[1:]).encode()


def body(rng: random.Random) -> bytes:
    prefix, suffix = body_parts()
    return prefix + customer_id(rng).encode() + suffix
