"""Writing coupon events without slowing checkout.

`record` (the high-volume read-only kinds: cart, validate) appends to an in-process
buffer: no I/O, a lock and a deque append. A daemon thread per process flushes the buffer
every ANALYTICS_FLUSH_SECONDS with one COPY. If PostgreSQL is down the events stay
buffered for the next try; beyond ANALYTICS_BUFFER_MAX the oldest are dropped (counted in
`analytics_events_dropped_total`), so an outage costs memory that is bounded, never
checkout latency.

`write` (the money kinds: apply, confirm, release, expire, return) inserts in the
caller's transaction, so those events commit or roll back with the redemption they
describe and are never lost.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from prometheus_client import Counter

from coupons.analytics.models import CouponEvent

logger = logging.getLogger(__name__)

COLUMNS = (
    "occurred_at",
    "kind",
    "outcome",
    "code",
    "coupon_id",
    "customer_id",
    "order_id",
    "currency",
    "order_value_minor",
    "discount_minor",
    "new_customer",
    "auto",
    "payload",
)
FIELDS = frozenset(COLUMNS)
# Text columns cut to their width at flush time: one over-long value must not make the
# whole batch fail forever.
_WIDTHS = {"outcome": 40, "code": 64, "customer_id": 100, "order_id": 100, "currency": 3}
_DEFAULTS = {
    "outcome": "",
    "code": "",
    "coupon_id": None,
    "customer_id": "",
    "order_id": "",
    "currency": "",
    "order_value_minor": 0,
    "discount_minor": 0,
    "new_customer": False,
    "auto": False,
    "payload": None,
}
_COPY_SQL = f"COPY {CouponEvent._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"

events_written = Counter(
    "analytics_events_written_total",
    "Coupon events inserted, by path (buffered or direct).",
    ["path"],
)
events_dropped = Counter(
    "analytics_events_dropped_total",
    "Buffered coupon events dropped (buffer full or unwritable batch).",
)

_lock = threading.Lock()  # guards _buffer and _dropping
_flush_lock = threading.Lock()  # one flush at a time, so a failed batch keeps its place
_buffer: deque[dict] = deque()
_dropping = False  # a "buffer full" warning was logged since the last successful flush
_outage = False  # a "database down" warning was logged since the last successful flush
_thread_pid = 0  # the process whose flusher thread is running


def record(kind: str, **fields) -> None:
    """Buffer one event (microseconds, no I/O); a background thread writes it. The
    payload is serialised at flush time: do not change it after recording."""
    if not settings.ANALYTICS_ENABLED:
        return
    unknown = fields.keys() - FIELDS
    if unknown:
        raise TypeError(f"Unknown event fields: {sorted(unknown)}")
    fields["kind"] = kind
    fields.setdefault("occurred_at", timezone.now())
    global _dropping
    warn = False
    with _lock:
        if len(_buffer) >= settings.ANALYTICS_BUFFER_MAX:
            _buffer.popleft()
            events_dropped.inc()
            warn, _dropping = not _dropping, True
        _buffer.append(fields)
    if warn:  # once per episode, and outside the lock (a log handler may block)
        logger.warning(
            "analytics buffer full (%d events): dropping the oldest", settings.ANALYTICS_BUFFER_MAX
        )
    if _thread_pid != os.getpid():
        _start_flusher()


def write(events: list[dict]) -> None:
    """Insert events now, in the caller's transaction (each dict: kind plus model fields)."""
    if not settings.ANALYTICS_ENABLED or not events:
        return
    CouponEvent.objects.bulk_create([CouponEvent(**event) for event in events])
    events_written.labels("direct").inc(len(events))


def flush() -> int:
    """Write everything buffered now; returns how many events were written. On a database
    outage the batch goes back to the front of the buffer for the next try."""
    global _buffer, _dropping, _outage
    with _flush_lock:
        with _lock:
            batch, _buffer = _buffer, deque()
        if not batch:
            return 0
        try:
            _copy(batch)
        except (OperationalError, InterfaceError) as exc:
            if not _outage:
                _outage = True
                logger.warning("analytics flush failed, keeping %d events: %s", len(batch), exc)
            _requeue(batch)
            return 0
        except (DatabaseError, TypeError, ValueError):
            # Not an outage: this batch can never be written; keep the checkout's memory.
            logger.exception("analytics flush: dropping %d unwritable events", len(batch))
            events_dropped.inc(len(batch))
            return 0
        if _outage:
            _outage = False
            logger.warning("analytics flush recovered")
        with _lock:
            _dropping = False
        events_written.labels("buffered").inc(len(batch))
        return len(batch)


def pending() -> int:
    """Events waiting in this process's buffer."""
    return len(_buffer)


def discard() -> int:
    """Forget the buffered events (tests: nothing leaks into the next test or, at exit,
    into the development database)."""
    global _buffer
    with _lock:
        count, _buffer = len(_buffer), deque()
    return count


def _copy(batch: deque[dict]) -> None:
    # A savepoint when called inside a transaction (tests, a caller's atomic block), so a
    # failed COPY leaves the outer transaction usable; psycopg's errors become Django's.
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.connection.cursor() as raw,
        raw.copy(_COPY_SQL) as copy,
    ):
        for event in batch:
            copy.write_row(_row(event))


def _row(event: dict) -> tuple:
    values = {**_DEFAULTS, **event}
    for name, width in _WIDTHS.items():
        values[name] = (values[name] or "")[:width]
    if values["payload"] is not None:
        values["payload"] = json.dumps(values["payload"], cls=DjangoJSONEncoder)
    return tuple(values[column] for column in COLUMNS)


def _requeue(batch: deque[dict]) -> None:
    """Put a failed batch back before anything recorded meanwhile, then drop the oldest
    beyond the limit."""
    global _buffer
    with _lock:
        batch.extend(_buffer)
        _buffer = batch
        excess = len(_buffer) - settings.ANALYTICS_BUFFER_MAX
        for _ in range(max(0, excess)):
            _buffer.popleft()
        if excess > 0:
            events_dropped.inc(excess)
            logger.warning("analytics buffer full: dropped the %d oldest events", excess)


def _start_flusher() -> None:
    """One daemon thread per process, started on first use (forked gunicorn and Celery
    workers start their own: the pid differs from the parent's)."""
    global _thread_pid
    with _lock:
        if _thread_pid == os.getpid():
            return
        _thread_pid = os.getpid()
    threading.Thread(target=_flush_loop, name="analytics-flush", daemon=True).start()


def _flush_loop() -> None:
    while True:
        time.sleep(settings.ANALYTICS_FLUSH_SECONDS)
        try:
            flush()
        except Exception:  # the thread must survive anything; the events stay buffered
            logger.exception("analytics flush thread")
        finally:
            connections.close_all()  # this thread's connection goes back to the pool


def _after_fork_in_child() -> None:
    """The parent flushes its own buffer; a child starting with a copy would write it twice."""
    global _buffer, _lock, _flush_lock, _thread_pid
    _buffer = deque()
    _lock = threading.Lock()
    _flush_lock = threading.Lock()
    _thread_pid = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush)
