"""Turning coupons on and off under their locks, each change in the coupon's history.

A module of its own so that the abuse detectors can stop a coupon without importing
coupons.services, which calls them (apply, return, re-enable): the dependency runs
coupons.services -> coupons.abuse -> coupons.activation and never back. Staff and the
API go through coupons.services.coupons_set_active, which adds what a re-enable means
to the abuse module (its alerts reviewed, its leak counts reset)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from coupons import locks, selectors


def coupons_active_write(
    *, coupon_ids: list[int], active: bool, reason: str = "", disabled_reason: str = ""
) -> tuple[int, list[int]]:
    """Set `active` on the coupons that differ, row by row under their locks, so each
    change lands in the coupon's history with `reason`; `disabled_reason` (automatic
    disables) is shown on the coupon until it is re-enabled. Returns (coupons changed,
    ids of automatically disabled coupons this turned back on).

    Runs inside the caller's transaction (it opens none: the locks are held to the
    caller's commit) and leaves the cache invalidation to the caller."""
    changed = 0
    reenabled = []
    for coupon in locks.coupons_lock(coupon_ids).values():
        if coupon.active == active:
            continue
        if active and coupon.disabled_reason:
            reenabled.append(coupon.pk)
        coupon.active = active
        coupon.version += 1
        coupon.disabled_reason = "" if active else disabled_reason[:300]
        coupon.disabled_at = timezone.now() if coupon.disabled_reason else None
        # simple-history keeps 100 characters; the full reason is on the coupon/alert.
        change_reason = reason or ("Activated" if active else "Deactivated")
        coupon._change_reason = change_reason[:100]  # type: ignore[attr-defined] # simple-history
        coupon.save(
            update_fields=["active", "version", "disabled_reason", "disabled_at", "updated_at"]
        )
        changed += 1
    return changed, reenabled


def coupons_disable(*, coupon_ids: list[int], reason: str = "", disabled_reason: str = "") -> int:
    """Stop coupons (the abuse detectors' automatic disable): the coupons changed.
    A disable never re-enables anything, so nothing here calls back into abuse."""
    with transaction.atomic():
        changed, _ = coupons_active_write(
            coupon_ids=coupon_ids, active=False, reason=reason, disabled_reason=disabled_reason
        )
        transaction.on_commit(lambda: selectors.cache_forget(coupon_ids=coupon_ids))
    return changed
