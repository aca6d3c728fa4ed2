"""Row locks for the coupon services, always taken in one order so two transactions can
never deadlock: the order, then coupons, then codes, then customers, then redemptions,
each by pk.

The coupon, code and customer rows are locked `FOR NO KEY UPDATE`: their keys never
change, and unlike `FOR UPDATE` this does not block the foreign-key checks of concurrent
inserts that point at them (claim tokens, 50,000-code chunks, redemptions of other
orders)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from coupons.models import Code, Coupon, Customer, Redemption

# Raw SQL: these run while a hot coupon may be locked, and skipping the ORM's query
# compilation shortens the time every other checkout waits for that row.
_COUPONS_LOCK_SQL = "SELECT * FROM coupons_coupon WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
_CODES_LOCK_SQL = """
SELECT k.*, cu.external_id AS bound_external_id
  FROM coupons_code k LEFT JOIN coupons_customer cu ON cu.id = k.customer_id
 WHERE k.id = ANY(%s) ORDER BY k.id FOR NO KEY UPDATE OF k
"""
# Transaction-level advisory locks in a two-key space of their own (codebatches uses
# another namespace); hashtext collisions only make two orders take turns.
ORDER_NAMESPACE = 0x4F520000  # "OR"
_ORDER_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_ORDER_HELD_SQL = """
SELECT EXISTS (SELECT 1 FROM coupons_redemption r
                WHERE r.order_id = %s AND r.status IN ('reserved', 'confirmed'))
"""


def order_lock(order_id: str) -> bool:
    """Serialise every apply to one order (first in the lock order), then say, from a
    statement that starts after the lock was granted, whether the order already holds
    coupons. Two statements on purpose: in READ COMMITTED a statement sees the data as
    of its own start, so a check made in the statement that waited would miss the
    competitor that committed meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_LOCK_SQL, [ORDER_NAMESPACE, order_id])
        cursor.execute(_ORDER_HELD_SQL, [order_id])
        return cursor.fetchone()[0]


def coupons_lock(ids: Iterable[int]) -> dict[int, Coupon]:
    return {c.pk: c for c in Coupon.objects.raw(_COUPONS_LOCK_SQL, [sorted(set(ids))])}


def codes_lock(ids: Iterable[int]) -> dict[int, Code]:
    """Codes with `bound_external_id` (the bound customer's storefront id, or None)."""
    return {c.pk: c for c in Code.objects.raw(_CODES_LOCK_SQL, [sorted(set(ids))])}


# NO KEY: the codes' keys never change, and claim inserts pointing at them must not wait.
_CODES_LOCK_BARE_SQL = (
    "SELECT id FROM coupons_code WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
)


def codes_lock_bare(ids: Iterable[int]) -> None:
    """Lock codes (NO KEY, by pk) without reading them: the claims expiry's step 2, which
    waits here for an apply holding one of its tokens (apply locks coupon, then code).
    Inside the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_CODES_LOCK_BARE_SQL, [sorted(set(ids))])


def customers_lock(ids: Iterable[int]) -> dict[int, Customer]:
    return {
        c.pk: c
        for c in Customer.objects.select_for_update(no_key=True)
        .filter(pk__in=set(ids))
        .order_by("pk")
    }


def redemptions_lock(ids: Iterable) -> list[Redemption]:
    """Redemptions (with their code and customer, unlocked) locked by pk."""
    return list(
        Redemption.objects.select_for_update(of=("self",), no_key=True)
        .select_related("code", "customer")
        .filter(pk__in=set(ids))
        .order_by("pk")
    )


_CONFIRM_SQL = """
UPDATE coupons_redemption SET status = 'confirmed', confirmed_at = %s
 WHERE order_id = %s AND status = 'reserved'
RETURNING id
"""


def redemptions_confirm(order_id: str, now) -> list:
    """reserved -> confirmed for the order's reservations; the ids this UPDATE moved."""
    with connection.cursor() as cursor:
        cursor.execute(_CONFIRM_SQL, [now, order_id])
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class CustomerFacts:
    segments: frozenset[str] = frozenset()
    orders_count: int = 0
    customer_uses: dict[int, int] = field(default_factory=dict)  # coupon id -> live uses


_CUSTOMER_FACTS_SQL = """
SELECT cu.segments, cu.orders_count,
       COALESCE((SELECT json_object_agg(x.coupon_id, x.n) FROM (
                   SELECT r.coupon_id, count(*) AS n FROM coupons_redemption r
                    WHERE r.customer_id = cu.id AND r.coupon_id = ANY(%s)
                      AND r.status IN ('reserved', 'confirmed')
                    GROUP BY r.coupon_id) x), '{}')
  FROM coupons_customer cu WHERE cu.id = %s
   FOR NO KEY UPDATE OF cu
"""


def customer_facts_lock(customer_pk: int | None, coupon_ids: list[int]) -> CustomerFacts:
    """Lock the customer (after the coupons and codes) and read, in the same statement,
    what the per-customer limits need: their live uses per coupon. Anonymous shoppers
    have no row and no per-customer limit."""
    if customer_pk is None:
        return CustomerFacts()
    with connection.cursor() as cursor:
        cursor.execute(_CUSTOMER_FACTS_SQL, [list(coupon_ids), customer_pk])
        segments, orders_count, uses = cursor.fetchone()
    if isinstance(uses, str):
        uses = json.loads(uses)
    return CustomerFacts(
        segments=frozenset(segments),
        orders_count=orders_count,
        customer_uses={int(k): v for k, v in uses.items()},
    )


_TAKE_AND_RECORD_SQL = """
WITH coupon AS (
    UPDATE coupons_coupon
       SET uses = uses + 1, budget_used_minor = budget_used_minor + %(spend)s
     WHERE id = %(coupon_id)s AND (max_uses_total IS NULL OR uses < max_uses_total)
       AND (budget_minor IS NULL OR budget_used_minor + %(spend)s <= budget_minor)
    RETURNING id),
code AS (
    UPDATE coupons_code SET uses = uses + 1
     WHERE id = %(code_id)s AND (max_uses IS NULL OR uses < max_uses)
       AND EXISTS (SELECT 1 FROM coupon)
    RETURNING id)
INSERT INTO coupons_redemption
       (id, coupon_id, code_id, customer_id, order_id, apply_id, status, currency,
        discount_minor, shipping_discount_minor, order_value_minor, lines, auto,
        idempotency_key, context, expires_at, created_at)
SELECT %(id)s, %(coupon_id)s, code.id, %(customer_id)s, %(order_id)s, %(apply_id)s, %(status)s,
       %(currency)s, %(discount_minor)s, %(shipping_discount_minor)s, %(order_value_minor)s,
       %(lines)s::jsonb, %(auto)s, %(idempotency_key)s, %(context)s::jsonb, %(expires_at)s,
       %(created_at)s
  FROM code
RETURNING id
"""


def use_take_and_record(x: Redemption) -> bool:
    """Under the coupon and code locks: the conditional counter updates (coupon uses and
    budget, then code) and the redemption insert as one statement, so the hot row stays
    locked for one round trip instead of three. False when a limit or the budget was
    reached (nothing inserted; the caller rolls back the coupon's increment)."""
    params: dict[str, Any] = {
        "id": x.id,
        "coupon_id": x.coupon_id,
        "code_id": x.code_id,
        "customer_id": x.customer_id,
        "order_id": x.order_id,
        "apply_id": x.apply_id,
        "status": x.status,
        "currency": x.currency,
        "discount_minor": x.discount_minor,
        "shipping_discount_minor": x.shipping_discount_minor,
        "order_value_minor": x.order_value_minor,
        "lines": json.dumps(x.lines),
        "auto": x.auto,
        "idempotency_key": x.idempotency_key,
        "context": json.dumps(x.context, cls=DjangoJSONEncoder),
        "expires_at": x.expires_at,
        "created_at": x.created_at,
        "spend": x.discount_minor + x.shipping_discount_minor,
    }
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_AND_RECORD_SQL, params)
        return cursor.fetchone() is not None
