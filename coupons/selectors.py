"""Reads for the validate path: coupon definitions from a two-level cache, live counters
from PostgreSQL in one query.

Definitions (a code's terms and its coupon's rule) are cached in Redis and, for
COUPON_LOCAL_CACHE_SECONDS, in the process. Counters are never cached: they move on every
apply and a stale count would say "valid" for a sold-out coupon. A Redis outage makes the
cache miss (django-redis IGNORE_EXCEPTIONS), so reads fall back to PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from core import crockford
from coupons.engine.types import CodeTerms, Rule, Shopper, Tier, Usage
from coupons.models import HOLDING, Code, Coupon, Redemption

CACHE_VERSION = "v3"  # bump when the cached Rule/row shapes change
_MISSING = "__missing__"  # cached marker for "no such code" (guessing costs no query)
_MISSING_TTL = 60
_local: dict[str, tuple[float, object]] = {}


def normalize_code(raw: str) -> str:
    return raw.strip().upper()


def resolve_codes(codes: Iterable[str]) -> tuple[list[str], dict[str, CodeTerms | None]]:
    """The stored codes the shopper meant, in order, each once, with their terms. A code
    not found as typed is tried in its Crockford form (generated codes and claim tokens
    are stored so: "summer-k3q0" finds SUMMERK3Q0, O reads as 0, I and L as 1)."""
    typed = list(dict.fromkeys(normalize_code(c) for c in codes))
    found = code_terms_get_many(typed)
    retry = {c: crockford.canonical(c) for c in typed if found.get(c) is None}
    retry = {c: k for c, k in retry.items() if k and k != c}
    if retry:
        again = code_terms_get_many(retry.values())
        found.update({k: v for k, v in again.items() if v is not None})
        typed = [retry[c] if c in retry and again.get(retry[c]) is not None else c for c in typed]
    wanted = list(dict.fromkeys(typed))
    return wanted, {c: found.get(c) for c in wanted}


def _code_key(code: str) -> str:
    return f"{CACHE_VERSION}:code:{code}"


def _rule_key(coupon_id: int) -> str:
    return f"{CACHE_VERSION}:rule:{coupon_id}"


def rule_from_coupon(c: Coupon) -> Rule:
    return Rule(
        coupon_id=c.pk,
        code=c.code,
        type=c.type,
        currency=c.currency,
        percent_bp=c.percent_bp,
        amount=c.amount_minor,
        cap=c.cap_minor,
        tiers=tuple(Tier(t["threshold_minor"], t["discount_minor"]) for t in c.tiers or ()),
        bogo_buy=c.bogo_buy,
        bogo_get=c.bogo_get,
        bogo_percent_bp=c.bogo_percent_bp,
        min_cart=c.min_cart_minor,
        eligible_categories=frozenset(c.eligible_categories),
        eligible_skus=frozenset(c.eligible_skus),
        excluded_skus=frozenset(c.excluded_skus),
        eligible_segments=frozenset(c.eligible_segments),
        first_purchase_only=c.first_purchase_only,
        max_uses_total=c.max_uses_total,
        max_uses_per_user=c.max_uses_per_user,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        active=c.active,
        stackable=c.stackable,
        stack_group=c.stack_group,
        auto_apply=c.auto_apply,
        priority=c.priority,
        name=c.description or c.code,
        budget=c.budget_minor,
    )


def _code_row(code: Code) -> tuple:
    bound = code.customer.external_id if code.customer is not None else None
    return (code.pk, code.code, code.coupon_id, code.max_uses, code.expires_at, bound, code.active)


def _local_get(key: str):
    hit = _local.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def _local_put(key: str, value: object) -> None:
    ttl = settings.COUPON_LOCAL_CACHE_SECONDS
    if ttl > 0:
        if len(_local) > 50_000:
            _local.clear()
        _local[key] = (time.monotonic() + ttl, value)


def _cached_many(keys: list[str]) -> dict[str, Any]:
    found = {}
    remote = []
    for key in keys:
        value = _local_get(key)
        if value is None:
            remote.append(key)
        else:
            found[key] = value
    if remote:
        for key, value in cache.get_many(remote).items():
            found[key] = value
            _local_put(key, value)
    return found


def code_terms_get_many(codes: Iterable[str]) -> dict[str, CodeTerms | None]:
    """code (normalized) -> its terms with the coupon's rule, or None if no such code."""
    codes = list(dict.fromkeys(codes))
    keys = {c: _code_key(c) for c in codes}
    cached = _cached_many(list(keys.values()))
    rows: dict[str, tuple | None] = {}
    misses = []
    for code, key in keys.items():
        value = cached.get(key)
        if value is None:
            misses.append(code)
        else:
            rows[code] = None if value == _MISSING else value
    if misses:
        loaded = {
            c.code: _code_row(c)
            for c in Code.objects.select_related("customer").filter(code__in=misses)
        }
        to_cache = {}
        for code in misses:
            row = loaded.get(code)
            rows[code] = row
            to_cache[_code_key(code)] = row if row is not None else _MISSING
        for key, value in to_cache.items():
            _local_put(key, value)
        cache.set_many(
            {k: v for k, v in to_cache.items() if v != _MISSING},
            timeout=settings.COUPON_CACHE_SECONDS,
        )
        missing = {k: v for k, v in to_cache.items() if v == _MISSING}
        if missing:
            cache.set_many(missing, timeout=_MISSING_TTL)
    rules = rules_get_many({row[2] for row in rows.values() if row is not None})
    out: dict[str, CodeTerms | None] = {}
    for code in codes:
        row = rows.get(code)
        if row is None or row[2] not in rules:
            out[code] = None
            continue
        code_id, text, coupon_id, max_uses, expires_at, bound, active = row
        out[code] = CodeTerms(
            code_id=code_id,
            code=text,
            rule=rules[coupon_id],
            max_uses=max_uses,
            expires_at=expires_at,
            bound_customer=bound,
            active=active,
        )
    return out


def rules_get_many(coupon_ids: Iterable[int]) -> dict[int, Rule]:
    ids = list(coupon_ids)
    if not ids:
        return {}
    keys = {i: _rule_key(i) for i in ids}
    cached = _cached_many(list(keys.values()))
    out = {i: cached[k] for i, k in keys.items() if k in cached}
    misses = [i for i in ids if i not in out]
    if misses:
        fresh = {c.pk: rule_from_coupon(c) for c in Coupon.objects.filter(pk__in=misses)}
        cache.set_many(
            {_rule_key(i): r for i, r in fresh.items()}, timeout=settings.COUPON_CACHE_SECONDS
        )
        for i, rule in fresh.items():
            _local_put(_rule_key(i), rule)
        out.update(fresh)
    return out


def cache_forget(*, coupon_ids: Iterable[int] = (), codes: Iterable[str] = ()) -> None:
    """Drop cached definitions after a change (called from transaction.on_commit), and
    tell every process to rebuild its compiled promotions."""
    from coupons import promotions

    keys = [_rule_key(i) for i in coupon_ids] + [_code_key(c) for c in codes]
    for key in keys:
        _local.pop(key, None)
    if keys:
        cache.delete_many(keys)
        promotions.changed()


def forget_local() -> None:
    """Drop this process's copies of definitions (another process changed something)."""
    _local.clear()


_LIVE_SQL = """
SELECT k.id, k.uses, c.uses, c.budget_used_minor, cu.segments, cu.orders_count,
       CASE WHEN cu.id IS NULL THEN 0 ELSE (
         SELECT count(*) FROM coupons_redemption r
          WHERE r.customer_id = cu.id AND r.coupon_id = c.id
            AND r.status IN ('reserved', 'confirmed')) END
  FROM coupons_code k
  JOIN coupons_coupon c ON c.id = k.coupon_id
  LEFT JOIN coupons_customer cu ON cu.external_id = %s
 WHERE k.id = ANY(%s)
"""
_CUSTOMER_SQL = "SELECT segments, orders_count FROM coupons_customer WHERE external_id = %s"


def live_state(
    code_ids: list[int], customer_id: str | None, shopper: Shopper
) -> tuple[dict[int, Usage], Shopper]:
    """Live counters for the codes, and the shopper merged with what the engine stores."""
    usage: dict[int, Usage] = {}
    stored: tuple[list, int] | None = None
    with connection.cursor() as cursor:
        if code_ids:
            cursor.execute(_LIVE_SQL, [customer_id, code_ids])
            for (
                code_id,
                code_uses,
                coupon_uses,
                budget_used,
                segments,
                orders,
                cust_uses,
            ) in cursor.fetchall():
                usage[code_id] = Usage(
                    coupon_uses=coupon_uses,
                    code_uses=code_uses,
                    customer_uses=cust_uses,
                    budget_used=budget_used,
                )
                if segments is not None:
                    stored = (segments, orders)
        elif customer_id is not None:
            cursor.execute(_CUSTOMER_SQL, [customer_id])
            row = cursor.fetchone()
            stored = (row[0], row[1]) if row else None
    if stored is not None:
        shopper = Shopper(
            id=shopper.id,
            segments=shopper.segments | frozenset(stored[0]),
            orders_count=max(shopper.orders_count, stored[1]),
        )
    return usage, shopper


_ORDER_HOLDS_SQL = """
SELECT EXISTS (SELECT 1 FROM coupons_redemption
                WHERE order_id = %s AND status IN ('reserved', 'confirmed'))
"""


def holding_for_order(order_id: str) -> list[Redemption]:
    """The order's live (reserved or confirmed) redemptions. Almost every checkout has
    none, so a cheap EXISTS comes first and the rows are loaded only when there are."""
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_HOLDS_SQL, [order_id])
        if not cursor.fetchone()[0]:
            return []
    return list(
        Redemption.objects.select_related("code", "customer")
        .filter(order_id=order_id, status__in=HOLDING)
        .order_by("created_at")
    )


_CUSTOMER_ENSURE_SQL = """
WITH new AS (INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
             VALUES (%s, '{}', 0, now()) ON CONFLICT (external_id) DO NOTHING RETURNING id)
SELECT id FROM new UNION ALL SELECT id FROM coupons_customer WHERE external_id = %s
"""


def customer_pk_ensure(external_id: str) -> int:
    """The engine's row for a storefront customer, created on first sight. An existing
    row costs one read (ON CONFLICT DO NOTHING writes nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(_CUSTOMER_ENSURE_SQL, [external_id, external_id])
        row = cursor.fetchone()
        if row is None:  # created by a concurrent call after this statement's snapshot
            cursor.execute("SELECT id FROM coupons_customer WHERE external_id = %s", [external_id])
            row = cursor.fetchone()
    return row[0]


def redemptions_for_order(order_id: str) -> list[Redemption]:
    return list(
        Redemption.objects.select_related("code").filter(order_id=order_id).order_by("created_at")
    )
