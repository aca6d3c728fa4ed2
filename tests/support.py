"""Helpers for tests: request bodies and customer tokens."""

import time

import jwt
from django.conf import settings


def customer_token(sub: str, **claims) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, settings.JWT_SIGNING_KEY, algorithm="HS256")


def cart(*items, currency="USD", shipping=None, subtotal=None) -> dict:
    """cart(("SKU-1", "electronics", "50.00", 3), ...) -> API cart object."""
    body = {
        "currency": currency,
        "items": [
            {"sku": s, "category": c, "unit_price": p, "quantity": q} for s, c, p, q in items
        ],
    }
    if shipping is not None:
        body["shipping"] = shipping
    if subtotal is not None:
        body["subtotal"] = subtotal
    return body
