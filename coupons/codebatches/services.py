"""Writes for code batches: create one (validated, task queued on commit), generate its
codes (the Celery task's body), resume the stalled ones.

Generation, per chunk and in one transaction: fresh random codes are COPYed into a
temporary staging table, moved into the coupon's codes in one `INSERT ... SELECT ... ON
CONFLICT (code) DO NOTHING` (coupons.services.codes_insert_from_staging: every statement
on a coupon table is the coupons app's), and the batch's `generated` is set from the rows
that really went in. A clash (with any code, from any batch) simply does not insert; the
loop asks for what is still missing until the exact count exists. A crash loses at most
the chunk in flight (its transaction rolls back), and a re-run starts from `count(*)` of
the batch's codes, so no count is ever trusted that the database does not hold.

One worker per batch: a session-level PostgreSQL advisory lock keyed by the batch id.
A second task for the same batch (a redelivery, a beat resume, a double click) waits a
little for it, then returns (the task retries later if the holder made no progress). If
the holder dies, PostgreSQL ends its session and drops the lock: at once when the session
was idle, within DB_CLIENT_CONNECTION_CHECK_MS when it was in a statement (without that
check the backend would run the statement to its end first).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from core.crockford import ALPHABET
from core.idempotency import create_once
from coupons import selectors as coupon_selectors
from coupons import services as coupon_services

from . import codegen, selectors
from .models import MAX_CODE_LENGTH, MAX_COUNT, MAX_PREFIX_LENGTH, MIN_CODE_LENGTH, CodeBatch

if TYPE_CHECKING:
    from coupons.models import Coupon

logger = logging.getLogger(__name__)

CHUNK_SIZE = 50_000
# Sessions inserting chunks side by side (see _work_in_threads).
PARALLEL = getattr(settings, "CODEBATCH_PARALLEL", 2)
# Rounds in a row that insert nothing before a batch is declared impossible (the code
# space of prefix + length is full); with 60+ random bits this never happens by chance.
MAX_IDLE_ROUNDS = 20
# How long a second task waits for the batch's lock: well above the 2 s in which a dead
# worker's backend notices its client is gone (client_connection_check_interval).
LOCK_WAIT_SECONDS = 15.0
ADVISORY_NAMESPACE = 0x43420000  # "CB": keeps these keys apart from other lock users
FORBIDDEN = "ILO"
CODE_MAX_LENGTH = coupon_selectors.CODE_MAX_LENGTH
STAGING_TABLE = "codebatch_staging"  # a chunk's temporary table (this session's own)

Status = CodeBatch.Status


class BatchExhausted(Exception):
    """No new code could be inserted for MAX_IDLE_ROUNDS rounds."""


# --- create -------------------------------------------------------------------------------


def prefix_clean(raw: str) -> str:
    """The prefix as stored: upper case, Crockford symbols only.

    I, L and O are refused because a typed code is read in its Crockford form (O -> 0,
    I/L -> 1): a stored "PROMO..." could never be found from "promo-...". U is not a
    Crockford symbol, but nothing rewrites it on input, so it is allowed in the prefix
    (API.md's own example is "SUMMER"); the random part never contains it."""
    text = (raw or "").strip().upper()
    if not text:
        raise ValidationError({"prefix": ["Give a prefix (1-20 characters)."]})
    if len(text) > MAX_PREFIX_LENGTH:
        raise ValidationError({"prefix": [f"At most {MAX_PREFIX_LENGTH} characters."]})
    found = [c for c in FORBIDDEN if c in text]
    if found:
        raise ValidationError(
            {
                "prefix": [
                    f"The prefix may not contain I, L or O (found {', '.join(found)}): codes use "
                    "Crockford base32, where a typed O reads as 0 and I or L as 1. Use 0 or 1 "
                    "instead, or another letter."
                ]
            }
        )
    others = sorted({c for c in text if c not in ALPHABET and c != "U"})
    if others:
        raise ValidationError(
            {
                "prefix": [
                    "Use only digits and the letters A-Z except I, L and O "
                    f"(found {' '.join(repr(c) for c in others)})."
                ]
            }
        )
    return text


def customer_ids_clean(ids: Iterable[str]) -> list[str]:
    """Stripped, without blanks, each once, in the given order."""
    cleaned = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
    if any(len(i) > 100 for i in cleaned):
        raise ValidationError({"customer_ids": ["Customer ids are at most 100 characters."]})
    return cleaned


def batch_check(
    *,
    prefix: str,
    count: int | None,
    code_length: int,
    max_uses_per_code: int | None,
    expires_at: datetime | None,
    customer_ids: list[str],
) -> dict:
    """Every rule of a batch request, all errors at once, as model field values."""
    errors: dict[str, list[str]] = {}
    try:
        prefix = prefix_clean(prefix)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if customer_ids:
        if count is not None and count != len(customer_ids):
            errors["count"] = [
                f"With customer_ids, count must be their number "
                f"({len(customer_ids):,}) or be left out."
            ]
        count = len(customer_ids)
    if count is None:
        errors.setdefault("count", ["Give count (or customer_ids)."])
    elif not 1 <= count <= MAX_COUNT:
        errors.setdefault("count", [f"Between 1 and {MAX_COUNT:,} codes per batch."])
    if not MIN_CODE_LENGTH <= code_length <= MAX_CODE_LENGTH:
        errors["code_length"] = [f"Between {MIN_CODE_LENGTH} and {MAX_CODE_LENGTH} random symbols."]
    elif "prefix" not in errors and len(prefix) + code_length > CODE_MAX_LENGTH:
        errors["code_length"] = [
            f"Prefix and code length together exceed {CODE_MAX_LENGTH} characters."
        ]
    if max_uses_per_code is not None and max_uses_per_code < 1:
        errors["max_uses_per_code"] = ["At least 1 (or none for unlimited)."]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry is in the past."]
    if errors:
        raise ValidationError(errors)
    return {
        "prefix": prefix,
        "requested": count,
        "code_length": code_length,
        "max_uses_per_code": max_uses_per_code,
        "expires_at": expires_at,
        "customer_ids": customer_ids,
    }


@transaction.atomic
def batch_create(
    *,
    coupon: Coupon,
    prefix: str,
    count: int | None = None,
    code_length: int = MIN_CODE_LENGTH,
    max_uses_per_code: int | None = 1,
    expires_at: datetime | None = None,
    customer_ids: Iterable[str] = (),
    created_by=None,
    idempotency_key: str = "",
    idempotency_principal: str = "",
    request_fingerprint: str = "",
) -> CodeBatch:
    """Record the batch and queue its generation once the row is committed.

    The queueing is `robust`: a broker that is down does not fail the request (which
    would also make a retried Idempotency-Key create a second batch); the batch sits in
    `generating` with an old `updated_at` and the beat job resumes it.

    With an `idempotency_key`, the batch that key already created (this caller's) is
    returned instead of a new one, found before any check (a retry after the expiry has
    passed still gets its batch); the key is stored with the row, and its unique
    constraint decides between concurrent first attempts. The same key with another
    request (`request_fingerprint`) is 409 idempotency_key_reused."""

    def create(idempotency: dict) -> CodeBatch:
        fields = batch_check(
            prefix=prefix,
            count=count,
            code_length=code_length,
            max_uses_per_code=max_uses_per_code,
            expires_at=expires_at,
            customer_ids=customer_ids_clean(customer_ids),
        )
        return CodeBatch.objects.create(
            coupon=coupon, created_by=created_by, **idempotency, **fields
        )

    batch, created = create_once(
        CodeBatch.objects.without_customer_ids(),
        principal=idempotency_principal,
        key=idempotency_key,
        fingerprint=request_fingerprint,
        create=create,
    )
    if created:
        batch_enqueue_on_commit(batch.pk)
    return batch


def batch_enqueue_on_commit(batch_id) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.batch_generate.delay(str(batch_id)), robust=True)


@transaction.atomic
def batch_resume(*, batch_id) -> bool:
    """A failed batch back to `generating` and queued (admin action); True if it was."""
    resumed = CodeBatch.objects.filter(pk=batch_id, status=Status.FAILED).update(
        status=Status.GENERATING, error="", updated_at=timezone.now()
    )
    if resumed:
        batch_enqueue_on_commit(batch_id)
    return bool(resumed)


def batches_resume_stalled(*, older_than: timedelta | None = None) -> int:
    """Queue every batch still `generating` that nobody has advanced for a while: its
    worker died, or the queueing after the commit was lost. A running batch touches
    `updated_at` after every chunk (well under a second), and a batch that is in fact
    running just ignores the extra task (advisory lock)."""
    from . import tasks

    if older_than is None:
        older_than = timedelta(seconds=getattr(settings, "CODEBATCH_STALL_SECONDS", 120))
    cutoff = timezone.now() - older_than
    ids = list(
        CodeBatch.objects.filter(status=Status.GENERATING, updated_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:100]
    )
    for batch_id in ids:
        tasks.batch_generate.delay(str(batch_id))
    return len(ids)


# --- generate -----------------------------------------------------------------------------


def _lock_key(batch_id: uuid.UUID) -> int:
    return int.from_bytes(batch_id.bytes[:4], "big", signed=True)


@contextlib.contextmanager
def batch_lock(batch_id: uuid.UUID, *, wait: float = 0.0):
    """Session advisory lock on (namespace, batch): yields True if this session has it.

    `wait`: keep trying for that many seconds. A worker killed mid-statement leaves a
    PostgreSQL backend that lets go of the lock only when it notices its client is gone
    (within client_connection_check_interval); the redelivered task must not give up in
    that moment, or the batch would sit until the task's retry or the beat job."""
    key = _lock_key(batch_id)
    deadline = time.monotonic() + wait
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, key])
            acquired = cursor.fetchone()[0]
            if acquired or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, key])


def batch_progress(batch_id) -> tuple | None:
    """What a waiting task compares to tell a working lock holder from a stuck one:
    (status, generated, updated_at), or None when the batch does not exist."""
    return (
        CodeBatch.objects.filter(pk=batch_id)
        .values_list("status", "generated", "updated_at")
        .first()
    )


def batch_generate(
    *,
    batch_id,
    chunk_size: int = CHUNK_SIZE,
    max_chunks: int | None = None,
    after_chunk: Callable[[int], None] | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
    parallel: int | None = None,
) -> CodeBatch | None:
    """Generate the batch's missing codes; safe to call any number of times, anywhere.

    Returns the batch (reloaded), or None when it does not exist or another session is
    working on it. `max_chunks` stops early with the batch still `generating` (tests and
    a bounded run); `after_chunk(n)` is called after each committed chunk (tests: crash
    injection); `parallel` sessions insert side by side (default CODEBATCH_PARALLEL).
    A lost database connection leaves the batch `generating` (the retry or the beat job
    resumes it); any other error (a bug, a full code space) marks it `failed` with the
    message, so the beat job does not retry it forever; the admin can resume it.
    Never more than `requested`: each chunk adds to `generated` in its own transaction
    and the CHECK (generated <= requested) would roll back a chunk that overshot."""
    batch_id = uuid.UUID(str(batch_id))
    with batch_lock(batch_id, wait=lock_wait) as acquired:
        if not acquired:
            logger.info("code batch %s: another worker holds it", batch_id)
            return None
        batch = _batch_load(batch_id)
        if batch is None or batch.status != Status.GENERATING:
            return batch
        try:
            _generate(
                batch,
                chunk_size=chunk_size,
                max_chunks=max_chunks,
                after_chunk=after_chunk,
                parallel=PARALLEL if parallel is None else parallel,
            )
        except (OperationalError, InterfaceError):
            raise  # the database went away: transient, the batch stays `generating`
        except SoftTimeLimitExceeded:
            raise  # not the batch's fault: the task queues itself again
        except Exception as exc:
            logger.exception("code batch %s failed", batch_id)
            CodeBatch.objects.filter(pk=batch_id).update(
                status=Status.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                updated_at=timezone.now(),
            )
            raise
        return _batch_load(batch_id)


class _Plan:
    """Hands out chunk sizes to the sessions working on one batch, so that together they
    never ask for more than is missing: a chunk whose codes partly clashed gives the
    shortfall back for someone to regenerate. Thread-safe."""

    def __init__(self, missing: int, *, chunk_size: int, max_chunks: int | None):
        self.missing = missing
        self.chunk_size = chunk_size
        self.chunks_left = max_chunks
        self.chunks = self.idle = 0
        self.stop = self.exhausted = False
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if self.stop or self.missing <= 0 or self.chunks_left == 0:
                return 0
            want = min(self.chunk_size, self.missing)
            self.missing -= want
            self.chunks += 1
            if self.chunks_left is not None:
                self.chunks_left -= 1
            return want

    def done(self, want: int, inserted: int) -> int:
        with self._lock:
            self.missing += want - inserted
            self.idle = 0 if inserted else self.idle + 1
            if self.idle >= MAX_IDLE_ROUNDS:
                self.stop = self.exhausted = True
            return self.chunks


def _batch_load(batch_id) -> CodeBatch | None:
    # The SQL reads a targeted batch's customer ids in PostgreSQL: never load them here.
    return CodeBatch.objects.without_customer_ids().filter(pk=batch_id).first()


def _chunk_commit(batch: CodeBatch, want: int) -> int:
    """One chunk in its own transaction, with the progress it made."""
    with transaction.atomic():
        inserted = _chunk_insert(batch, want)
        CodeBatch.objects.filter(pk=batch.pk).update(
            generated=F("generated") + inserted, updated_at=timezone.now()
        )
    return inserted


def _work(batch: CodeBatch, plan: _Plan, after_chunk: Callable[[int], None] | None) -> None:
    while want := plan.take():
        inserted = _chunk_commit(batch, want)
        number = plan.done(want, inserted)
        if after_chunk is not None:
            after_chunk(number)


def _generate(
    batch: CodeBatch,
    *,
    chunk_size: int,
    max_chunks: int | None,
    after_chunk: Callable[[int], None] | None,
    parallel: int,
) -> None:
    # The truth first: the codes that exist (a crash may have left `generated` behind).
    # A killed run's last chunk may still be committing (its client sent COMMIT before it
    # died, so PostgreSQL finishes it): that transaction holds the batch row since its
    # UPDATE, so wait for the row before counting, or its codes would be made twice.
    with transaction.atomic():
        list(CodeBatch.objects.select_for_update().filter(pk=batch.pk).values_list("pk", flat=True))
        have = selectors.batch_codes_count(batch.pk)
        CodeBatch.objects.filter(pk=batch.pk).update(generated=have, updated_at=timezone.now())
    if batch.targeted:
        _customers_ensure(batch.pk)
        # Two sessions could pick the same waiting customers: one session only.
        parallel = 1
    if connection.in_atomic_block:
        parallel = 1  # other sessions could not see the caller's uncommitted rows
    plan = _Plan(batch.requested - have, chunk_size=chunk_size, max_chunks=max_chunks)
    if parallel <= 1:
        _work(batch, plan, after_chunk)
    else:
        _work_in_threads(batch, plan, after_chunk, parallel)
    if plan.exhausted:
        raise BatchExhausted(
            f"No free code found in {MAX_IDLE_ROUNDS} rounds: the space of "
            f"{batch.prefix} + {batch.code_length} symbols is full."
        )
    if plan.missing > 0:
        return  # stopped after max_chunks: still `generating`
    # Done: the count once more from the rows themselves (we hold the lock, so it is
    # final), and the batch closed with it.
    have = selectors.batch_codes_count(batch.pk)
    CodeBatch.objects.filter(pk=batch.pk).update(
        status=Status.DONE,
        generated=have,
        error="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    logger.info("code batch %s done: %s codes", batch.pk, have)


def _work_in_threads(
    batch: CodeBatch, plan: _Plan, after_chunk: Callable[[int], None] | None, parallel: int
) -> None:
    """`parallel` sessions (threads with their own connections) insert chunks side by
    side: PostgreSQL spends its time in index maintenance and foreign-key checks, per
    backend, so two backends use two cores. The advisory lock stays with the caller's
    session; every chunk is still one transaction of its own."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _work(batch, plan, after_chunk)
        except BaseException as exc:  # re-raised in the caller below
            plan.stop = True
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, name=f"codebatch-{i}") for i in range(parallel)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        # Interrupted here (the soft time limit): let the sessions finish the chunk in
        # hand and stop, so nothing keeps inserting after this run has given up its lock.
        plan.stop = True
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]


def _customers_ensure(batch_id) -> None:
    """Every targeted customer as a Customer row, set-wise (existing ones untouched)."""
    with transaction.atomic():
        coupon_services.customers_ensure_for_batch(batch_id=batch_id)


def _chunk_insert(batch: CodeBatch, want: int) -> int:
    """One chunk (inside the caller's transaction): stage `want` random codes with COPY
    and move the ones that clash with nothing. Returns how many went in."""
    customers: list[int] = []
    if batch.targeted:
        customers = coupon_selectors.batch_customers_waiting(batch.pk, want)
        want = len(customers)
        if not want:
            return 0
    codes = codegen.random_codes(batch.prefix, batch.code_length, want)
    with connection.cursor() as cursor:
        # A temporary table: no WAL, private to this session, dropped with the chunk.
        cursor.execute(
            f"CREATE TEMP TABLE {STAGING_TABLE} (code varchar(64) NOT NULL, "
            "customer_id bigint) ON COMMIT DROP"
        )
        if customers:
            payload = "".join(f"{c}\t{k}\n" for c, k in zip(codes, customers, strict=True))
            columns = "code, customer_id"
        else:
            payload = "\n".join(codes) + "\n"
            columns = "code"
        with cursor.copy(f"COPY {STAGING_TABLE} ({columns}) FROM STDIN") as copy:
            copy.write(payload.encode())
        inserted = coupon_services.codes_insert_from_staging(
            staging_table=STAGING_TABLE,
            coupon_id=batch.coupon_id,
            max_uses=batch.max_uses_per_code,
            expires_at=batch.expires_at,
            batch_id=batch.pk,
        )
        # Dropped here as well as on commit: inside an outer transaction (tests, a
        # caller's atomic block) the commit is not ours.
        cursor.execute(f"DROP TABLE {STAGING_TABLE}")
    return inserted
