"""The tiered cache of effective entitlements: this process's bounded LRU, then Redis,
then PostgreSQL (selectors.entitlements_compute).

Keys carry two versions, both kept in PostgreSQL (entitlements.models.Account) and moved
in the transaction of every change: the customer's, and the plans' (any plan's feature
values). On commit the new number is published to Redis, only ever upwards (a Lua
compare-and-set, so two commits published out of order cannot move it back). A read
asks Redis for both numbers in one round trip (MGET): an entry cached under other
numbers is not used, so a change is visible to the next read in any process.

Redis not answering: reads go to PostgreSQL (core/redis_guard pauses Redis for a second
after a timeout, so a frozen Redis costs the socket timeout once per second per process).
A publish lost to an outage is repaired by the version keys' TTL: a missing key is
recreated from PostgreSQL's number. The read that finds a key missing asks PostgreSQL for
both numbers only (one indexed query), publishes them again and then uses an entry cached
under them, if any: a key's expiry costs that query, not a full compute. A denial is
never answered from a cache (the caller confirms it from PostgreSQL: services.check), so a
stale entry can only ever say "yes" for at most ENTITLEMENTS_VERSION_TTL seconds, and only
after a publish was lost.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_redis import get_redis_connection

from core import redis_guard
from entitlements import selectors
from entitlements.models import PLANS_ACCOUNT, Account
from entitlements.selectors import Entitlements

logger = logging.getLogger(__name__)

PREFIX = "ent:1"
# Set only if greater: KEYS[1] version key, ARGV[1] version, ARGV[2] ttl seconds.
_PUBLISH = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""


def _prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:{PREFIX}"


def version_key(account: str) -> str:
    return f"{_prefix()}:v:{account}"


def answer_key(customer_id: str, mine: int, plans: int) -> str:
    return f"{_prefix()}:a:{customer_id}:{mine}:{plans}"


class _Local:
    """A bounded LRU of customer_id -> (versions, Entitlements), shared by the threads
    of this process."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[tuple[int, int], Entitlements]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, customer_id: str, versions: tuple[int, int]) -> Entitlements | None:
        with self._lock:
            hit = self._entries.get(customer_id)
            if hit is None or hit[0] != versions:
                return None
            self._entries.move_to_end(customer_id)
            return hit[1]

    def put(self, customer_id: str, versions: tuple[int, int], ents: Entitlements) -> None:
        size = settings.ENTITLEMENTS_LOCAL_CACHE_SIZE
        if size <= 0:
            return
        with self._lock:
            self._entries[customer_id] = (versions, ents)
            self._entries.move_to_end(customer_id)
            while len(self._entries) > size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


local = _Local()


def _redis():
    return get_redis_connection("default")


def _fresh(ents: Entitlements) -> bool:
    return ents.valid_until is None or ents.valid_until > timezone.now()


def _versions_from_redis(customer_id: str) -> tuple[int, int] | None:
    """Both version numbers from Redis (a missing one repaired from PostgreSQL), or None
    (Redis not answering)."""
    if not redis_guard.available():
        return None
    started = time.monotonic()
    try:
        mine, plans = _redis().mget([version_key(customer_id), version_key(PLANS_ACCOUNT)])
    except Exception:  # any Redis failure: PostgreSQL answers
        redis_guard.pause()
        return None
    if redis_guard.note(started):
        return None
    if mine is None or plans is None:
        return _versions_repair(customer_id)
    return int(mine), int(plans)


def _versions_repair(customer_id: str) -> tuple[int, int] | None:
    """A version key is missing (expired, a publish lost, Redis restarted empty): both
    numbers from PostgreSQL, where every change moves them in its own transaction, then
    published again (only upwards, so a change committing meanwhile keeps its number).
    An entry cached under these numbers is current; None when Redis fails meanwhile."""
    numbers = selectors.versions(customer_id)
    started = time.monotonic()
    try:
        pipe = _redis().pipeline(transaction=False)
        for account, number in ((customer_id, numbers[0]), (PLANS_ACCOUNT, numbers[1])):
            pipe.eval(_PUBLISH, 1, version_key(account), number, _version_ttl())
        pipe.execute()
    except Exception:
        redis_guard.pause()
        return None
    if redis_guard.note(started):
        return None
    return numbers


def entitlements_get(customer_id: str) -> Entitlements:
    """The hot path: from this process's LRU or Redis when both versions still match,
    else computed from PostgreSQL (and cached under the versions it was computed at)."""
    versions = _versions_from_redis(customer_id)
    if versions is not None:
        ents = local.get(customer_id, versions)
        if ents is not None and _fresh(ents):
            return ents
        ents = _remote_get(customer_id, versions)
        if ents is not None and _fresh(ents):
            local.put(customer_id, versions, ents)
            return ents
    ents = selectors.entitlements_compute(customer_id)
    _store(ents, versions)
    return ents


def _remote_get(customer_id: str, versions: tuple[int, int]) -> Entitlements | None:
    started = time.monotonic()
    try:
        raw = _redis().get(answer_key(customer_id, *versions))
    except Exception:
        redis_guard.pause()
        return None
    if redis_guard.note(started) or raw is None:
        return None
    try:
        return pickle.loads(raw)  # noqa: S301 # our own Redis, our own entries
    except Exception:  # an entry of an older shape: recompute
        return None


def _store(ents: Entitlements, seen: tuple[int, int] | None) -> None:
    """Cache a computed answer under the versions it was computed at, when Redis agrees
    on them (or had none: then publish PostgreSQL's numbers). Answers that change by time
    alone are kept no later than that time; test-clock customers are never cached."""
    if ents.on_test_clock or not redis_guard.available():
        return
    computed = ents.versions
    if seen is not None and seen != computed:
        return  # a change is committing or its publish is in flight: do not cache
    ttl = settings.ENTITLEMENTS_CACHE_SECONDS
    if ents.valid_until is not None:
        ttl = min(ttl, int((ents.valid_until - timezone.now()).total_seconds()))
    if ttl <= 0:
        return
    started = time.monotonic()
    try:
        pipe = _redis().pipeline(transaction=False)
        if seen is None:
            for account, number in ((ents.customer_id, computed[0]), (PLANS_ACCOUNT, computed[1])):
                pipe.eval(_PUBLISH, 1, version_key(account), number, _version_ttl())
        pipe.set(answer_key(ents.customer_id, *computed), pickle.dumps(ents), ex=ttl)
        pipe.execute()
    except Exception:
        redis_guard.pause()
        return
    if not redis_guard.note(started) and seen is not None:
        local.put(ents.customer_id, computed, ents)


def _version_ttl() -> int:
    return settings.ENTITLEMENTS_VERSION_TTL


# --- changes ------------------------------------------------------------------------------


def changed(customer_id: str) -> int:
    """Move the customer's version, in the caller's transaction; published on commit.
    Returns the new number."""
    return _bump(customer_id)


def plans_changed() -> int:
    """Any plan's feature values changed: every cached answer is stale."""
    return _bump(PLANS_ACCOUNT)


def _bump(account: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO entitlements_account AS a (customer_id, version) VALUES (%s, 1) "
            "ON CONFLICT (customer_id) DO UPDATE SET version = a.version + 1 "
            "RETURNING version",
            [account],
        )
        (number,) = cursor.fetchone()
    transaction.on_commit(lambda: publish(account, number))
    return number


def publish(account: str, number: int) -> None:
    """Tell every process's next read (after commit). A lost publish is repaired by the
    version key's TTL (module docstring)."""
    try:
        _redis().eval(_PUBLISH, 1, version_key(account), number, _version_ttl())
    except Exception:
        logger.warning(
            "entitlements: version %s of %s not published (Redis down?)", number, account
        )
        redis_guard.pause()


def reset() -> None:
    """Forget this process's copies (tests)."""
    local.clear()


def account_version(account: str) -> int:
    return (
        Account.objects.filter(customer_id=account).values_list("version", flat=True).first() or 0
    )
