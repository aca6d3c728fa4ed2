"""Auto-apply promotions compiled in memory, per process, and the site's stacking policy.

Evaluating a cart must not scan the coupon table: each process keeps the active auto
promotions pre-parsed into engine Rules and indexed by currency, then by category, SKU
and (for site-wide ones) minimum cart value, so a cart only meets the promotions that
could concern it.

Freshness: any change to a coupon, code or the settings row writes a new random token
under VERSION_KEY in Redis (right away and again on commit, so a process that rebuilt
from not-yet-committed rows rebuilds again). Every evaluation reads the token (one Redis
GET) and rebuilds when it differs, so the next evaluation in any process sees a change.
When Redis does not answer, a process rebuilds at most every FALLBACK_SECONDS; and
MAX_AGE_SECONDS bounds the life of a catalog whatever happens to a token write.
"""

from __future__ import annotations

import bisect
import gc
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import metrics, redis_guard
from coupons import localcache
from coupons.engine.combine import rank_key
from coupons.engine.types import Cart, CodeTerms
from coupons.models import Coupon, PromotionSettings
from coupons.rules import rule_from_coupon

logger = logging.getLogger(__name__)

VERSION_KEY = "promotions:version"
FALLBACK_SECONDS = 1.0
MAX_AGE_SECONDS = 300.0
FREEZE_AT = 1_000  # promotions from which a rebuild also freezes the heap (see _build)


@dataclass
class _CurrencyIndex:
    by_category: dict[str, list[CodeTerms]] = field(default_factory=dict)
    by_sku: dict[str, list[CodeTerms]] = field(default_factory=dict)
    open_min_cart: list[int] = field(default_factory=list)  # sorted, parallel to open_promos
    open_promos: list[CodeTerms] = field(default_factory=list)


@dataclass
class Catalog:
    version: str | None
    built_at: float
    policy_row: str | None
    size: int
    indexes: dict[str, _CurrencyIndex]

    @property
    def policy(self) -> str:
        return self.policy_row or settings.STACKING_POLICY

    def candidates(self, cart: Cart) -> list[CodeTerms]:
        """Promotions that could apply to this cart (conditions still to be checked):
        the ones restricted to a category or SKU in the cart, and the site-wide ones whose
        minimum the cart meets. In rank order, each once."""
        index = self.indexes.get(cart.currency)
        if index is None:
            return []
        found: dict[int, CodeTerms] = {}
        for line in cart.lines:
            for promo in index.by_category.get(line.category, ()):
                found[promo.rule.coupon_id] = promo
            for promo in index.by_sku.get(line.sku, ()):
                found[promo.rule.coupon_id] = promo
        reach = bisect.bisect_right(index.open_min_cart, cart.subtotal)
        for promo in index.open_promos[:reach]:
            found[promo.rule.coupon_id] = promo
        return sorted(found.values(), key=rank_key)


_RULE_FIELDS = (
    "id",
    "code",
    "description",
    "type",
    "currency",
    "percent_bp",
    "amount_minor",
    "cap_minor",
    "tiers",
    "bogo_buy",
    "bogo_get",
    "bogo_percent_bp",
    "min_cart_minor",
    "eligible_categories",
    "eligible_skus",
    "excluded_skus",
    "eligible_segments",
    "first_purchase_only",
    "max_uses_total",
    "max_uses_per_user",
    "valid_from",
    "valid_to",
    "active",
    "stackable",
    "stack_group",
    "auto_apply",
    "priority",
    "budget_minor",
)
_lock = threading.Lock()
_catalog: Catalog | None = None


def _build(version: str | None) -> Catalog:
    policy_row = (
        PromotionSettings.objects.filter(pk=1).values_list("stacking_policy", flat=True).first()
    )
    now = timezone.now()
    # Plain rows, not model instances: building 10,000 Coupon objects was most of the cost.
    coupons = [
        SimpleNamespace(pk=row["id"], **row)
        for row in Coupon.objects.filter(
            Q(valid_to__isnull=True) | Q(valid_to__gte=now), active=True, auto_apply=True
        ).values(*_RULE_FIELDS)
    ]
    codes = _public_codes([c.pk for c in coupons])
    indexes: dict[str, _CurrencyIndex] = {}
    size = 0
    for coupon in coupons:
        code = codes.get(coupon.pk)
        if code is None:
            logger.warning("auto promotion %s has no usable public code; skipped", coupon.code)
            continue
        code_id, text, max_uses, expires_at = code
        terms = CodeTerms(
            code_id=code_id,
            code=text,
            rule=rule_from_coupon(coupon),  # type: ignore[arg-type] # a row
            max_uses=max_uses,
            expires_at=expires_at,
        )
        index = indexes.setdefault(coupon.currency, _CurrencyIndex())
        rule = terms.rule
        if rule.eligible_categories or rule.eligible_skus:
            for category in rule.eligible_categories:
                index.by_category.setdefault(category, []).append(terms)
            for sku in rule.eligible_skus:
                index.by_sku.setdefault(sku, []).append(terms)
        else:
            index.open_promos.append(terms)
        size += 1
    for index in indexes.values():
        index.open_promos.sort(key=lambda t: (t.rule.min_cart or 0, rank_key(t)))
        index.open_min_cart = [t.rule.min_cart or 0 for t in index.open_promos]
    if size >= FREEZE_AT:
        # The catalog lives until the next change: keep its objects out of the garbage
        # collector's full passes (10,000 promotions made them pause a request ~100 ms).
        gc.unfreeze()  # the previous catalog's objects become collectable again
        gc.collect()
        gc.freeze()
    return Catalog(
        version=version,
        built_at=time.monotonic(),
        policy_row=policy_row,
        size=size,
        indexes=indexes,
    )


_CODES_SQL = """
SELECT DISTINCT ON (k.coupon_id) k.coupon_id, k.id, k.code, k.max_uses, k.expires_at
  FROM coupons_code k JOIN coupons_coupon c ON c.id = k.coupon_id
 WHERE k.coupon_id = ANY(%s) AND k.active AND k.customer_id IS NULL
 ORDER BY k.coupon_id, (k.code = c.code) DESC, k.id
"""


def _public_codes(coupon_ids: list[int]) -> dict[int, tuple]:
    """coupon id -> its public code (the one named like the coupon, else the oldest
    unbound one): the code an automatic redemption is recorded against."""
    if not coupon_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_CODES_SQL, [coupon_ids])
        return {row[0]: row[1:] for row in cursor.fetchall()}


_prefetched = threading.local()  # .version, .at: read_with()'s token for this request
PREFETCH_SECONDS = 0.5


def read_with(keys: list[str]) -> dict:
    """One Redis round trip for the version token and `keys` (the abuse limits' block
    markers, abuse/ratelimit.py): the token is kept for this thread's next catalog() call
    (the same request, within PREFETCH_SECONDS) and the other values are returned. A
    checkout call with codes then pays one round trip for both."""
    if not redis_guard.available():
        return {}
    started = time.monotonic()
    found = cache.get_many([VERSION_KEY, *keys])
    if redis_guard.note(started):
        return {}
    _prefetched.version = found.pop(VERSION_KEY, None)
    _prefetched.at = time.monotonic()
    return found


def drop_prefetched() -> None:
    """The request that prefetched the token will not evaluate (refused): forget it."""
    _prefetched.version = None


def _read_version() -> str | None:
    """The version token, or None when Redis does not answer. A read that times out
    pauses optional Redis reads for a second (core/redis_guard.py), so checkout does not
    pay the timeout on every request."""
    version = getattr(_prefetched, "version", None)
    if version is not None:
        _prefetched.version = None
        if time.monotonic() - _prefetched.at < PREFETCH_SECONDS:
            return version
    if not redis_guard.available():
        return None
    started = time.monotonic()
    version = cache.get(VERSION_KEY)
    if version is None:
        if redis_guard.note(started):
            return None
        # First use after a Redis flush: publish a token (a concurrent process may win;
        # the next read sees whichever did).
        cache.add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    return version


def catalog() -> Catalog:
    """The current compiled promotions for this process (rebuilt when stale)."""
    global _catalog
    version = _read_version()
    current = _catalog
    now = time.monotonic()
    if current is not None:
        age = now - current.built_at
        if version is not None and version == current.version and age < MAX_AGE_SECONDS:
            return current
        if version is None and age < FALLBACK_SECONDS:
            return current
    with _lock:
        # Another thread may have rebuilt it while we waited (use theirs), or a change may
        # have dropped it to None (build). Return the local: `changed()` can set the
        # global to None again at any moment, without the lock.
        latest = _catalog
        if latest is current or latest is None:
            if current is not None and version != current.version:
                localcache.forget_all()  # typed codes' definitions may have changed too
            latest = _build(version)
            _catalog = latest
            metrics.promotion_catalog_builds.inc()
        return latest


def changed() -> None:
    """A coupon, code or the settings changed: every process rebuilds on its next
    evaluation. Written now and again after commit (see the module docstring)."""
    _bump()
    if connection.in_atomic_block:
        transaction.on_commit(_bump)


def _bump() -> None:
    global _catalog
    cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    _catalog = None  # this process: rebuild even if Redis did not take the write


def policy() -> str:
    return catalog().policy


def reset() -> None:
    """Forget this process's catalog (tests)."""
    global _catalog
    _catalog = None
    _prefetched.version = None
    redis_guard.reset()
