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
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from core import crockford, redis_guard
from coupons import localcache, promotions
from coupons.engine.combine import standalone
from coupons.engine.discounts import describe
from coupons.engine.types import Cart, CodeTerms, Line, Rule, Shopper, Usage
from coupons.models import HOLDING, Code, Coupon, Redemption
from coupons.rules import rule_from_coupon

CACHE_VERSION = "v3"  # bump when the cached Rule/row shapes change
_MISSING = "__missing__"  # cached marker for "no such code" (guessing costs no query)
_MISSING_TTL = 60
_local = localcache.entries  # the same dict (tests clear it between cases)
_local_get = localcache.get
_local_put = localcache.put
# The longest code a coupon can have (a CharField: max_length is always set, the stubs
# type it as int | None).
CODE_MAX_LENGTH = cast(int, Code._meta.get_field("code").max_length)


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


def _code_row(code: Code) -> tuple:
    bound = code.customer.external_id if code.customer is not None else None
    return (code.pk, code.code, code.coupon_id, code.max_uses, code.expires_at, bound, code.active)


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
        for key, value in _remote_get_many(remote).items():
            found[key] = value
            _local_put(key, value)
    return found


def _remote_get_many(keys: list[str]) -> dict[str, Any]:
    """Redis's copies of `keys`, or nothing while Redis is not answering: a frozen Redis
    costs the socket timeout once, then core/redis_guard pauses these reads for a second
    and the definitions come from PostgreSQL."""
    if not redis_guard.available():
        return {}
    started = time.monotonic()
    found = cache.get_many(keys)
    return {} if redis_guard.note(started) else found


def _remote_set_many(values: dict[str, Any], timeout: int) -> None:
    if values and redis_guard.available():
        started = time.monotonic()
        cache.set_many(values, timeout=timeout)
        redis_guard.note(started)


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
        _remote_set_many(
            {k: v for k, v in to_cache.items() if v != _MISSING},
            timeout=settings.COUPON_CACHE_SECONDS,
        )
        _remote_set_many({k: v for k, v in to_cache.items() if v == _MISSING}, timeout=_MISSING_TTL)
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
        _remote_set_many(
            {_rule_key(i): r for i, r in fresh.items()}, timeout=settings.COUPON_CACHE_SECONDS
        )
        for i, rule in fresh.items():
            _local_put(_rule_key(i), rule)
        out.update(fresh)
    return out


def cache_forget(*, coupon_ids: Iterable[int] = (), codes: Iterable[str] = ()) -> None:
    """Drop cached definitions after a change (called from transaction.on_commit), and
    tell every process to rebuild its compiled promotions."""
    keys = [_rule_key(i) for i in coupon_ids] + [_code_key(c) for c in codes]
    localcache.drop(keys)
    if keys:
        cache.delete_many(keys)
        promotions.changed()


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


def public_code_ids_for_coupons(coupon_ids: Iterable[int]) -> list[int]:
    """The coupons' public codes (bound to no customer, from no batch): the codes whose
    unique customers the leak detector counts."""
    return list(
        Code.objects.filter(
            coupon_id__in=list(coupon_ids), customer__isnull=True, batch__isnull=True
        ).values_list("pk", flat=True)
    )


# --- reads for the sub-domains ----------------------------------------------------------
# One statement each, as the sub-domain ran it before (same plan, same round trips);
# here because they read coupon tables, which only this app queries. Some also read the
# calling sub-domain's own tables (named in the SQL only: nothing here imports them).

_SHARED_SQL = """
SELECT i.kind, i.digest, cu.external_id, r.id
  FROM abuse_identityuse i
  JOIN coupons_redemption r ON r.id = i.redemption_id
  LEFT JOIN coupons_customer cu ON cu.id = i.customer_id
 WHERE i.coupon_id = %s AND i.digest = ANY(%s)
   AND r.status IN ('reserved', 'confirmed')
   AND i.customer_id IS DISTINCT FROM %s
"""


def redemptions_sharing_identity(
    *, coupon_id: int, digests: list[str], customer_pk: int | None
) -> list[tuple]:
    """coupons.abuse (farming): live redemptions of this coupon by OTHER customers whose
    recorded identities (abuse_identityuse) include one of these digests:
    [(kind, digest, their customer id, redemption id)]. Called under the coupon's lock."""
    with connection.cursor() as cursor:
        cursor.execute(_SHARED_SQL, [coupon_id, digests, customer_pk])
        return cursor.fetchall()


_RETURN_RATE_SQL = """
SELECT count(*) FILTER (WHERE status = 'confirmed'),
       count(*) FILTER (WHERE status = 'confirmed' AND returned_at IS NOT NULL)
  FROM coupons_redemption WHERE coupon_id = %s
"""


def redemption_return_counts(coupon_id: int) -> tuple[int, int]:
    """coupons.abuse (return rate): (confirmed redemptions, of which returned)."""
    with connection.cursor() as cursor:
        cursor.execute(_RETURN_RATE_SQL, [coupon_id])
        confirmed, returned = cursor.fetchone()
    return confirmed, returned


_CLAIM_STATE_SQL = """
SELECT c.coupon_id, c.inventory, c.claimed, c.starts_at, c.ends_at, c.stopped_at,
       c.claim_hold_minutes, cl.id, cl.status, cl.expires_at, k.code, k.uses
  FROM campaigns_campaign c
  LEFT JOIN coupons_customer cu ON cu.external_id = %s
  LEFT JOIN campaigns_claim cl ON cl.campaign_id = c.id AND cl.customer_id = cu.id
  LEFT JOIN coupons_code k ON k.id = cl.code_id
 WHERE c.id = %s
"""


def campaign_claim_state(campaign_id, customer_external_id: str) -> tuple | None:
    """coupons.campaigns (the claim's one read): the campaign's state and this
    customer's claim with its token's text and uses, or None for no such campaign:
    (coupon_id, inventory, claimed, starts_at, ends_at, stopped_at, claim_hold_minutes,
    claim id, claim status, claim expires_at, token, token uses)."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_STATE_SQL, [customer_external_id, campaign_id])
        return cursor.fetchone()


_CODE_HOLDS_SQL = """
SELECT code_id, bool_or(status = 'confirmed')
  FROM coupons_redemption
 WHERE code_id = ANY(%s) AND status IN ('reserved', 'confirmed')
 GROUP BY code_id
"""


def code_holds_get(code_ids: list[int]) -> dict[int, bool]:
    """coupons.campaigns (claims expiry): code id -> whether it holds a confirmed use,
    for the codes with a live (reserved or confirmed) redemption; the others are absent.
    Read under the codes' locks (locks.codes_lock_bare) in the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_CODE_HOLDS_SQL, [code_ids])
        return dict(cursor.fetchall())


# Customers of the batch who do not hold one of its codes yet.
_BATCH_CUSTOMERS_WAITING_SQL = """
SELECT c.id
  FROM codebatches_codebatch b CROSS JOIN LATERAL unnest(b.customer_ids) AS t(external_id)
  JOIN coupons_customer c ON c.external_id = t.external_id
 WHERE b.id = %s
   AND NOT EXISTS (SELECT 1 FROM coupons_code k
                    WHERE k.customer_id = c.id AND k.batch_id = b.id)
 LIMIT %s
"""


def batch_customers_waiting(batch_id, limit: int) -> list[int]:
    """coupons.codebatches (a targeted batch's chunk): up to `limit` customer pks among
    the batch's customer ids (read in PostgreSQL, never loaded here) that hold none of
    its codes yet."""
    with connection.cursor() as cursor:
        cursor.execute(_BATCH_CUSTOMERS_WAITING_SQL, [batch_id, limit])
        return [row[0] for row in cursor.fetchall()]


# --- coupons at billing -----------------------------------------------------------------


def coupon_exists(code: str) -> bool:
    return Coupon.objects.filter(code=code).exists()


def billing_cart(sku: str, amount_minor: int, currency: str) -> Cart:
    """A subscription invoice as the pricing engine sees it: one line, the plan's price."""
    return Cart(currency=currency, lines=(Line(sku, "subscription", amount_minor, 1),))


def subscription_discount(
    *, coupon_id: int, sku: str, amount_minor: int, currency: str
) -> tuple[int, str]:
    """(discount in minor units, line description) of a subscription's coupon on one
    invoice of `amount_minor`, by the pricing engine on the coupon's rule. A redeemed
    coupon keeps discounting its invoices after its own validity ends (as Stripe's)."""
    rule = rules_get_many([coupon_id]).get(coupon_id)
    if rule is None or rule.currency != currency or amount_minor <= 0:
        return 0, ""
    terms = CodeTerms(code_id=0, code=rule.code, rule=rule)
    discount = standalone(terms, billing_cart(sku, amount_minor, currency))
    return min(discount, amount_minor), f"{rule.code}: {describe(rule, currency)}"
