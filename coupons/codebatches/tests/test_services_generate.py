"""The generation service called directly: exact counts, the code format, uniqueness,
resuming after an interruption or a crash, clashes regenerated, one worker per batch."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection, connections

from coupons.codebatches import codegen, services
from coupons.codebatches.models import CodeBatch
from coupons.codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

FORMAT = r"^{prefix}[0-9A-HJKMNP-TV-Z]{{{length}}}$"


def batch_stats(batch) -> tuple[int, int, int]:
    """(codes, distinct codes, codes not matching the format), counted by PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT code), count(*) FILTER (WHERE code !~ %s) "
            "FROM coupons_code WHERE batch_id = %s",
            [FORMAT.format(prefix=batch.prefix, length=batch.code_length), batch.pk],
        )
        return cursor.fetchone()


def test_random_codes_shape_and_alphabet():
    codes = codegen.random_codes("AB", 12, 2000)
    pattern = codegen.code_regex("AB", 12)
    assert len(codes) == 2000
    assert all(pattern.match(c) for c in codes)
    # every one of the 32 symbols turns up, and none of I, L, O, U
    symbols = set("".join(c[2:] for c in codes))
    assert len(symbols) == 32
    assert not symbols & set("ILOU")


def test_100k_codes_exact_unique_and_well_formed():
    # given a batch of 100,000 codes
    batch = CodeBatchFactory(prefix="SPRING", requested=100_000)
    # when the service runs
    done = services.batch_generate(batch_id=batch.pk, chunk_size=25_000)
    # then exactly 100,000 distinct codes of the format exist, bound to the coupon
    assert done.status == CodeBatch.Status.DONE
    assert done.generated == 100_000
    assert done.finished_at is not None
    assert batch_stats(batch) == (100_000, 100_000, 0)
    sample = Code.objects.filter(batch=batch).first()
    assert sample.coupon_id == batch.coupon_id
    assert sample.max_uses == 1
    assert sample.customer_id is None
    assert sample.active


def test_interrupted_after_some_chunks_then_resumed_is_exact():
    batch = CodeBatchFactory(requested=10_000)
    # given a run that stops after 3 chunks of 1,000
    partial = services.batch_generate(batch_id=batch.pk, chunk_size=1_000, max_chunks=3)
    assert partial.status == CodeBatch.Status.GENERATING
    assert partial.generated == 3_000 == Code.objects.filter(batch=batch).count()
    # when it is run again (twice: the second run has nothing to do)
    services.batch_generate(batch_id=batch.pk, chunk_size=1_000)
    again = services.batch_generate(batch_id=batch.pk, chunk_size=1_000)
    # then the exact count, no duplicates
    assert again.status == CodeBatch.Status.DONE
    assert again.generated == 10_000
    assert batch_stats(batch) == (10_000, 10_000, 0)


def test_crash_mid_chunk_rolls_back_the_chunk_and_resume_finishes(monkeypatch):
    batch = CodeBatchFactory(requested=5_000)
    real = services._chunk_insert
    calls = {"n": 0}

    def crashing(b, want):
        calls["n"] += 1
        inserted = real(b, want)  # the rows are in, but the transaction never commits
        if calls["n"] == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return inserted

    monkeypatch.setattr(services, "_chunk_insert", crashing)
    with pytest.raises(OperationalError):
        services.batch_generate(batch_id=batch.pk, chunk_size=1_000)
    # the third chunk was rolled back with its progress; the batch waits to be resumed
    batch.refresh_from_db()
    assert batch.status == CodeBatch.Status.GENERATING
    assert batch.generated == 2_000 == Code.objects.filter(batch=batch).count()

    monkeypatch.setattr(services, "_chunk_insert", real)
    done = services.batch_generate(batch_id=batch.pk, chunk_size=1_000)
    assert done.status == CodeBatch.Status.DONE
    assert batch_stats(batch) == (5_000, 5_000, 0)


def test_clashes_are_regenerated_until_the_exact_count(monkeypatch):
    # given codes that already exist and a generator that keeps proposing them
    coupon = CouponFactory()
    taken = [f"CLASH{i:012d}" for i in range(50)]
    Code.objects.bulk_create(Code(coupon=coupon, code=c) for c in taken)
    real = codegen.random_codes
    rounds = {"n": 0}

    def clashing(prefix, length, count):
        rounds["n"] += 1
        fresh = real(prefix, length, count)
        if rounds["n"] <= 2:  # the first two rounds: half the proposals clash, with
            # existing codes and with each other inside the chunk
            return [taken[i % 50] if i % 2 else fresh[i] for i in range(count)]
        return fresh

    monkeypatch.setattr(codegen, "random_codes", clashing)
    batch = CodeBatchFactory(coupon=coupon, prefix="CLASH", requested=300)
    done = services.batch_generate(batch_id=batch.pk, chunk_size=200)
    # then the batch still has exactly 300 codes of its own, the old ones untouched
    assert done.status == CodeBatch.Status.DONE
    assert done.generated == 300
    assert rounds["n"] >= 3
    assert Code.objects.filter(batch=batch).count() == 300
    assert Code.objects.filter(code__in=taken, batch__isnull=True).count() == 50


def test_full_code_space_fails_clearly(monkeypatch):
    coupon = CouponFactory()
    Code.objects.create(coupon=coupon, code="FULL000000000000")
    monkeypatch.setattr(
        codegen, "random_codes", lambda prefix, length, count: ["FULL000000000000"] * count
    )
    monkeypatch.setattr(services, "MAX_IDLE_ROUNDS", 3)
    batch = CodeBatchFactory(coupon=coupon, prefix="FULL", requested=10)
    with pytest.raises(services.BatchExhausted):
        services.batch_generate(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == CodeBatch.Status.FAILED
    assert "full" in batch.error


def test_terms_of_the_batch_are_on_every_code():
    from datetime import timedelta

    from django.utils import timezone

    expires = timezone.now() + timedelta(days=10)
    batch = CodeBatchFactory(
        requested=50, max_uses_per_code=None, code_length=16, expires_at=expires
    )
    services.batch_generate(batch_id=batch.pk)
    assert batch_stats(batch) == (50, 50, 0)
    assert set(Code.objects.filter(batch=batch).values_list("max_uses", "expires_at")) == {
        (None, expires)
    }


def test_missing_or_finished_batch_is_a_no_op():
    import uuid

    assert services.batch_generate(batch_id=uuid.uuid4()) is None
    batch = CodeBatchFactory(requested=5, status=CodeBatch.Status.DONE)
    assert services.batch_generate(batch_id=batch.pk).status == CodeBatch.Status.DONE
    assert not Code.objects.filter(batch=batch).exists()


@pytest.mark.django_db(transaction=True)
def test_advisory_lock_keeps_a_second_worker_out():
    batch = CodeBatchFactory(requested=20)
    held, release = threading.Event(), threading.Event()

    def holder():
        try:
            with services.batch_lock(batch.pk) as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        # while another session holds the batch, a run does nothing
        assert services.batch_generate(batch_id=batch.pk, lock_wait=0.5) is None
        assert not Code.objects.filter(batch=batch).exists()
    finally:
        release.set()
        thread.join(10)
    # once it is free, the run does the work
    assert services.batch_generate(batch_id=batch.pk).generated == 20


@pytest.mark.django_db(transaction=True)
def test_parallel_sessions_end_exact_even_after_one_fails(monkeypatch):
    # given a batch worked on by two sessions (threads with their own connections)
    batch = CodeBatchFactory(requested=30_000)
    real = services._chunk_insert
    calls = {"n": 0}

    def failing(b, want):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OperationalError("connection lost")
        return real(b, want)

    monkeypatch.setattr(services, "_chunk_insert", failing)
    # when one of them fails mid-batch
    with pytest.raises(OperationalError):
        services.batch_generate(batch_id=batch.pk, chunk_size=2_000, parallel=2)
    batch.refresh_from_db()
    assert batch.status == CodeBatch.Status.GENERATING
    assert batch.generated == Code.objects.filter(batch=batch).count() < 30_000
    # then a second run with both sessions ends with exactly the count
    monkeypatch.setattr(services, "_chunk_insert", real)
    done = services.batch_generate(batch_id=batch.pk, chunk_size=2_000, parallel=2)
    assert done.status == CodeBatch.Status.DONE
    assert done.generated == 30_000
    assert batch_stats(batch) == (30_000, 30_000, 0)
