"""Rate limits on guessing: attempts with codes that do not exist (`coupon_not_found`).

Counted per customer, per shopper IP and per checkout session with django-ratelimit's
fixed windows in Redis (rates in settings: ABUSE_NOT_FOUND_RATE_*). Real codes that fail
a condition (expired, minimum not met) are not guessing and are never counted.

A storefront server calls for all its shoppers from one address, so under an API key the
IP and session come from the body's `context`; only an end customer's own call (JWT) falls
back to the connection's address. When a limit is passed, a block marker with the
window's remaining time is written; every later call by that customer/IP/session is 429
with Retry-After until it expires, whatever code it sends (otherwise a script would learn
which guesses are real from which calls are not blocked). The markers are read in the
same Redis round trip as the promotions version the evaluation needs anyway
(promotions.read_with); counting happens only on unknown codes.

Redis down: nothing is limited (fail open) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled

from core import metrics, redis_guard
from coupons import promotions

logger = logging.getLogger(__name__)

RATES = {
    "customer": "ABUSE_NOT_FOUND_RATE_CUSTOMER",
    "ip": "ABUSE_NOT_FOUND_RATE_IP",
    "session": "ABUSE_NOT_FOUND_RATE_SESSION",
}


class RateLimited(Throttled):
    default_detail = "Too many attempts with unknown coupon codes."


def _block_key(dimension: str, value: str) -> str:
    return "abuse:block:" + hashlib.sha256(f"{dimension}:{value}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Guard:
    """The limits that apply to one checkout call."""

    request: object
    keys: dict  # dimension -> value

    @classmethod
    def for_request(cls, request, customer_id: str | None, context: dict | None) -> Guard:
        context = context or {}
        keys = {}
        if customer_id:
            keys["customer"] = customer_id
        principal = getattr(request, "user", None)
        ip = context.get("ip")
        if not ip and getattr(principal, "kind", None) == "customer":
            ip = request.META.get("REMOTE_ADDR")
        if ip:
            keys["ip"] = str(ip)
        if context.get("session_id"):
            keys["session"] = context["session_id"]
        return cls(request=request, keys=keys)

    @property
    def active(self) -> bool:
        return bool(self.keys) and settings.ABUSE_RATE_LIMITS_ENABLED

    def check(self) -> None:
        """Raise 429 while any of this call's customer/IP/session is blocked."""
        if not self.active or not redis_guard.available():
            return
        names = {_block_key(d, v): d for d, v in self.keys.items()}
        try:
            # Same round trip as the promotions version read the evaluation needs anyway.
            found = promotions.read_with(list(names))
        except Exception:  # fail open: checkout must not depend on Redis
            logger.warning("abuse rate limits skipped: Redis unavailable", exc_info=True)
            redis_guard.pause()
            return
        if found:
            promotions.drop_prefetched()
            until = max(found.values())
            dimension = names[max(found, key=lambda name: found[name])]
            self._refuse(dimension, until - time.time())

    def count_not_found(self, attempts: int = 1) -> None:
        """Count unknown codes; raise 429 if a limit is now passed (and block the key for
        the rest of its window)."""
        if not self.active or attempts <= 0 or not redis_guard.available():
            return
        tripped: list[tuple[str, int]] = []
        for dimension, value in self.keys.items():
            rate = getattr(settings, RATES[dimension])
            usage = None
            try:
                for _ in range(attempts):
                    usage = get_usage(
                        self.request,
                        group=f"coupon_not_found:{dimension}",
                        key=lambda _g, _r, v=value: v,
                        rate=rate,
                        increment=True,
                    )
            except Exception:  # fail open
                logger.warning("abuse rate limits skipped: Redis unavailable", exc_info=True)
                redis_guard.pause()
                return
            if usage is None:  # Redis did not answer (RATELIMIT_FAIL_OPEN)
                logger.warning("abuse rate limits skipped: Redis unavailable")
                return
            if usage["should_limit"]:
                wait = max(1, usage["time_left"])
                cache.set(_block_key(dimension, value), time.time() + wait, timeout=wait)
                tripped.append((dimension, wait))
        if tripped:
            dimension, wait = max(tripped, key=lambda t: t[1])
            self._refuse(dimension, wait)

    @staticmethod
    def _refuse(dimension: str, wait: float) -> None:
        metrics.abuse_rate_limited.labels(dimension).inc()
        wait = max(1, int(wait + 0.999))
        raise RateLimited(
            wait=wait, detail=(f"Too many attempts with unknown coupon codes for this {dimension}.")
        )
