"""This process's copies of cached coupon definitions (the first level of the selectors'
two-level cache), kept for COUPON_LOCAL_CACHE_SECONDS.

A module of its own because two others need it and must not need each other: the
selectors fill and read it, and promotions.catalog() empties it when the version token
says another process changed something (selectors -> promotions -> localcache, never
back)."""

from __future__ import annotations

import time

from django.conf import settings

MAX_ENTRIES = 50_000

# key -> (monotonic deadline, value). Never rebound: tests clear it in place.
entries: dict[str, tuple[float, object]] = {}


def get(key: str):
    hit = entries.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def put(key: str, value: object) -> None:
    ttl = settings.COUPON_LOCAL_CACHE_SECONDS
    if ttl > 0:
        if len(entries) > MAX_ENTRIES:
            entries.clear()
        entries[key] = (time.monotonic() + ttl, value)


def drop(keys: list[str]) -> None:
    for key in keys:
        entries.pop(key, None)


def forget_all() -> None:
    """Drop this process's copies of definitions (another process changed something)."""
    entries.clear()
