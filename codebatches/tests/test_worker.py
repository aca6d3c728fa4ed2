"""A real `celery -A config worker` (prefork, one pool process) consuming from the shared
Redis (a database of its own) and working on the pytest test database: a small batch end
to end, and a batch whose pool process is SIGKILLed mid-generation that still ends with
exactly the requested number of distinct codes."""

from __future__ import annotations

import os
import signal

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from codebatches.models import CodeBatch
from codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code
from tests.faults.conftest import (
    CeleryWorker,
    pid_alive,
    service_env,
    subprocess_database_url,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

BROKER = os.environ.get("CODEBATCH_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
TASK = "codebatches.tasks.batch_generate"


@pytest.fixture
def worker(transactional_db, tmp_path):
    redis.Redis.from_url(BROKER).flushdb()  # our own broker database only
    started = CeleryWorker(tmp_path, service_env(
        DATABASE_URL=subprocess_database_url(), CELERY_BROKER_URL=BROKER,
        REDIS_URL=settings.CACHES["default"]["LOCATION"], LOG_LEVEL="INFO",
        DB_POOL="false")).start()
    yield started
    started.stop()
    redis.Redis.from_url(BROKER).flushdb()


def send(batch_id) -> None:
    sender = Celery("codebatch-tests", broker=BROKER)
    try:
        sender.send_task(TASK, args=[str(batch_id)])
    finally:
        sender.close()


def state(batch) -> tuple[str, int, int, int]:
    batch.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT code) FROM coupons_code "
                       "WHERE batch_id = %s", [batch.pk])
        rows, distinct = cursor.fetchone()
    return batch.status, batch.generated, rows, distinct


def test_real_worker_generates_a_small_batch(worker):
    batch = CodeBatchFactory(prefix="WK", requested=2_500)
    send(batch.pk)
    wait_until(lambda: state(batch)[0] == "done", timeout=30,
               what=f"the batch to finish\n{worker.service.log_tail()}", interval=0.1)
    assert state(batch) == ("done", 2_500, 2_500, 2_500)
    assert Code.objects.filter(batch=batch, code__regex=r"^WK[0-9A-HJKMNP-TV-Z]{12}$",
                               coupon=batch.coupon).count() == 2_500


def test_worker_killed_mid_batch_then_rerun_ends_exact(worker):
    # given a batch large enough to be caught in the middle
    batch = CodeBatchFactory(prefix="KL", requested=400_000)
    send(batch.pk)
    wait_until(lambda: CodeBatch.objects.get(pk=batch.pk).generated >= 50_000, timeout=30,
               what="the first chunks", interval=0.02)
    # when its pool process is SIGKILLed
    (child,) = worker.pool_pids()
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: not pid_alive(child), timeout=10, what="the pool process to die")
    killed_at = state(batch)
    assert killed_at[0] == "generating" and killed_at[1] < 400_000, killed_at
    # and the task runs again (acks_late redelivers it; a second send is what the beat
    # job does, and is harmless if the redelivery already runs)
    wait_until(lambda: len(worker.pool_pids()) == 1, timeout=20, what="a new pool process")
    send(batch.pk)
    # then the batch ends with exactly the requested number of distinct codes
    wait_until(lambda: state(batch)[0] == "done", timeout=60,
               what=f"the batch to finish after the kill\n{worker.service.log_tail()}",
               interval=0.2)
    assert state(batch) == ("done", 400_000, 400_000, 400_000)
