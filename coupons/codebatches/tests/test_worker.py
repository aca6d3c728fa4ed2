"""A real `celery -A config worker` (prefork, one pool process) consuming a queue of this
test run's own from the shared Redis and working on the pytest test database: a small
batch end
to end; a batch whose pool process is SIGKILLed mid-generation that still ends with
exactly the requested number of distinct codes; a pool process killed while its session
holding the batch's lock is in a statement, whose backend PostgreSQL must drop within
seconds so the redelivered task can take over. Plus the task's retry when the lock is
held by a session that makes no progress, and the worker's own session settings.

The waits poll the batch row (cheap) and fail on "no progress for N seconds", not on a
total: the distinct count over every code runs once, at the end."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from config.celery import use_worker_db_sessions
from coupons.codebatches import services, tasks
from coupons.codebatches.models import CodeBatch
from coupons.codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code
from tests.faults.conftest import (
    CeleryWorker,
    pid_alive,
    service_env,
    subprocess_database_url,
    wait_for_progress,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

BROKER = os.environ.get("CODEBATCH_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
TASK = "codebatches.tasks.batch_generate"
# Other runs on this machine may use the same broker database: a queue of our own, and
# only its keys are deleted afterwards (never FLUSHDB).
QUEUE = f"codebatch-tests-{os.getpid()}"
# Seconds without any change to the batch row before a wait fails. A healthy run touches
# it after every chunk (a few seconds at most on a loaded box); a restart after a kill
# needs the new pool process, the dead backend to go (~2 s) and one chunk.
STALL = 45


def start_worker(tmp_path, **env) -> CeleryWorker:
    return CeleryWorker(
        tmp_path,
        service_env(
            DATABASE_URL=subprocess_database_url(),
            CELERY_BROKER_URL=BROKER,
            REDIS_URL=settings.CACHES["default"]["LOCATION"],
            LOG_LEVEL="INFO",
            DB_POOL="false",
            **env,
        ),
        queue=QUEUE,
    ).start()


def forget_queue() -> None:
    redis.Redis.from_url(BROKER).delete(QUEUE, f"_kombu.binding.{QUEUE}")


@pytest.fixture
def worker_factory(transactional_db, tmp_path):
    forget_queue()
    started: list[CeleryWorker] = []

    def make(**env) -> CeleryWorker:
        started.append(start_worker(tmp_path, **env))
        return started[-1]

    yield make
    for one in started:
        one.stop()
    forget_queue()


@pytest.fixture
def worker(worker_factory):
    return worker_factory()


def send(batch_id) -> None:
    # Not the current app: later tests resolve their shared tasks against the current one.
    sender = Celery("codebatch-tests", broker=BROKER, set_as_current=False)
    try:
        sender.send_task(TASK, args=[str(batch_id)], queue=QUEUE)
    finally:
        sender.close()


def progress(batch) -> tuple:
    """(status, generated, updated_at) from the batch row: what the waits poll."""
    return services.batch_progress(batch.pk)


def is_done(value) -> bool:
    return value[0] == CodeBatch.Status.DONE


def state(batch) -> tuple[str, int, int, int]:
    """The full check, rows and distinct codes included: run it once, not in a loop."""
    batch.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT code) FROM coupons_code WHERE batch_id = %s",
            [batch.pk],
        )
        rows, distinct = cursor.fetchone()
    return batch.status, batch.generated, rows, distinct


def lock_holders(batch) -> list[tuple[int, str, str | None]]:
    """(pid, state, wait_event_type) of the sessions holding the batch's advisory lock."""
    key = services._lock_key(batch.pk) & 0xFFFFFFFF  # pg_locks shows the oid (unsigned)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.pid, a.state, a.wait_event_type FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s "
            "AND l.objsubid = 2",
            [services.ADVISORY_NAMESPACE, key],
        )
        return cursor.fetchall()


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def test_real_worker_generates_a_small_batch(worker):
    batch = CodeBatchFactory(prefix="WK", requested=2_500)
    send(batch.pk)
    wait_for_progress(
        lambda: progress(batch),
        is_done,
        stall=STALL,
        interval=0.1,
        what=f"the batch to finish\n{worker.service.log_tail()}",
    )
    assert state(batch) == ("done", 2_500, 2_500, 2_500)
    assert (
        Code.objects.filter(
            batch=batch, code__regex=r"^WK[0-9A-HJKMNP-TV-Z]{12}$", coupon=batch.coupon
        ).count()
        == 2_500
    )


def test_worker_killed_mid_batch_then_rerun_ends_exact(worker):
    # given a batch large enough to be caught in the middle
    batch = CodeBatchFactory(prefix="KL", requested=400_000)
    send(batch.pk)
    wait_for_progress(
        lambda: progress(batch),
        lambda v: v[1] >= 50_000,
        stall=STALL,
        interval=0.02,
        what="the first chunks",
    )
    # when its pool process is SIGKILLed
    (child,) = worker.pool_pids()
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: not pid_alive(child), timeout=10, what="the pool process to die")
    killed_at = progress(batch)
    assert killed_at[0] == "generating", killed_at
    assert killed_at[1] < 400_000, killed_at
    # and the task runs again (acks_late redelivers it; a second send is what the beat
    # job does, and is harmless if the redelivery already runs)
    wait_until(lambda: len(worker.pool_pids()) == 1, timeout=20, what="a new pool process")
    send(batch.pk)
    # then the batch ends with exactly the requested number of distinct codes
    wait_for_progress(
        lambda: progress(batch),
        is_done,
        stall=STALL,
        what=f"the batch to finish after the kill\n{worker.service.log_tail()}",
    )
    assert state(batch) == ("done", 400_000, 400_000, 400_000)


def test_killed_worker_mid_statement_lets_go_of_the_lock_and_the_redelivery_finishes(
    worker_factory,
):
    # given a worker inserting with one session, the one that holds the batch's lock,
    # and that session held up in its INSERT (this test holds the table's lock: the
    # stand-in for a long statement)
    worker = worker_factory(CODEBATCH_PARALLEL="1")
    batch = CodeBatchFactory(prefix="LK", requested=120_000)
    db = settings.DATABASES["default"]
    blocker = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    try:
        blocker.execute("LOCK TABLE coupons_code IN EXCLUSIVE MODE")  # readers still read
        send(batch.pk)
        ((holder, *_),) = wait_until(
            lambda: [h for h in lock_holders(batch) if h[1] == "active" and h[2] == "Lock"],
            timeout=60,
            what="the lock holder to wait in its INSERT",
            interval=0.1,
        )
        # when the pool process is SIGKILLed while that statement runs
        (child,) = worker.pool_pids()
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: not pid_alive(child), timeout=10, what="the pool process to die")
        # then PostgreSQL ends the dead client's backend within seconds, and its lock with
        # it (client_connection_check_interval), although its statement is still waiting
        wait_until(
            lambda: not backend_alive(holder),
            timeout=10,
            what=f"backend {holder} of the killed worker to go",
            interval=0.1,
        )
        gone_after = time.monotonic() - killed
        # and the redelivered task takes the lock instead of giving up
        wait_until(
            lambda: [h for h in lock_holders(batch) if h[0] != holder],
            timeout=30,
            what=f"the redelivered task to take the lock\n{worker.service.log_tail()}",
            interval=0.1,
        )
        blocker.rollback()  # the "statement" ends
    finally:
        blocker.close()
    wait_for_progress(
        lambda: progress(batch),
        is_done,
        stall=STALL,
        what=f"the batch to finish after the kill\n{worker.service.log_tail()}",
    )
    assert state(batch) == ("done", 120_000, 120_000, 120_000)
    assert "another worker holds it" not in worker.service.log()
    print(f"\ndead backend gone {gone_after:.1f}s after the SIGKILL")


# --- the task around the lock, in-process ------------------------------------------------


@pytest.fixture
def lock_held_elsewhere():
    """factory: hold(batch, touch=False) keeps the batch's advisory lock in another session
    (a thread) until the test ends; with `touch` that session also advances the batch, as
    a working holder does."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def hold(batch, *, touch: bool = False) -> None:
        held = threading.Event()

        def run() -> None:
            try:
                with services.batch_lock(batch.pk) as acquired:
                    assert acquired
                    held.set()
                    while not stop.wait(0.1):
                        if touch:
                            CodeBatch.objects.filter(pk=batch.pk).update(updated_at=timezone.now())
            finally:
                connections.close_all()

        threads.append(threading.Thread(target=run))
        threads[-1].start()
        assert held.wait(10)

    yield hold
    stop.set()
    for thread in threads:
        thread.join(10)


def test_task_retries_when_the_lock_holder_makes_no_progress(monkeypatch, lock_held_elsewhere):
    # given a batch whose lock a session holds without doing anything (a dead worker's
    # backend PostgreSQL has not dropped yet)
    batch = CodeBatchFactory(requested=20)
    lock_held_elsewhere(batch)
    monkeypatch.setattr(services, "LOCK_WAIT_SECONDS", 0.5)
    retried = []

    def retry(**kw):
        retried.append(kw)
        return RuntimeError("retry")

    monkeypatch.setattr(tasks.batch_generate, "retry", retry)
    # when the task runs, then it does not give up: it asks to run again later
    with pytest.raises(RuntimeError, match="retry"):
        tasks.batch_generate(str(batch.pk))
    assert retried == [{"countdown": tasks.RETRY_SECONDS}]
    assert not Code.objects.filter(batch=batch).exists()


def test_task_leaves_a_batch_to_a_holder_that_makes_progress(monkeypatch, lock_held_elsewhere):
    batch = CodeBatchFactory(requested=20)
    lock_held_elsewhere(batch, touch=True)
    monkeypatch.setattr(services, "LOCK_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(tasks.batch_generate, "retry", lambda **kw: pytest.fail("retried"))
    tasks.batch_generate(str(batch.pk))  # returns: the holder is working on it
    assert not Code.objects.filter(batch=batch).exists()


# --- the worker's session settings ---------------------------------------------------------


@pytest.fixture
def worker_sessions():
    options = settings.DATABASES["default"]["OPTIONS"]
    saved = options.get("options")
    connection.close()
    use_worker_db_sessions()
    yield
    connection.close()
    options["options"] = saved
    connection.settings_dict["OPTIONS"]["options"] = saved


def session_settings() -> dict[str, str]:
    names = [
        "client_connection_check_interval",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
        "tcp_keepalives_idle",
        "plan_cache_mode",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [names])
        return dict(cursor.fetchall())


def test_every_session_checks_for_a_dead_client():
    assert session_settings()["client_connection_check_interval"] == "2000"
    assert session_settings()["tcp_keepalives_idle"] == "30"


def test_every_session_plans_each_statement_afresh():
    # foreign-key checks on a generic plan cached while a table was small scan it whole
    # (docs/decisions.md, "Custom plans for every database session")
    assert session_settings()["plan_cache_mode"] == "force_custom_plan"


def test_worker_sessions_have_statement_and_idle_timeouts(worker_sessions):
    got = session_settings()
    assert got["statement_timeout"] == "120000"  # a 50,000-code chunk takes seconds
    assert got["idle_in_transaction_session_timeout"] == "60000"
    assert got["client_connection_check_interval"] == "2000"
    assert got["plan_cache_mode"] == "force_custom_plan"


# --- a killed run's last chunk still committing ---------------------------------------------


def test_rerun_counts_after_a_dead_runs_chunk_that_is_still_committing():
    # given a batch half done, and another session with one more chunk inserted and
    # counted but not yet committed (a killed run's COMMIT still in flight: its client
    # sent it before it died, so PostgreSQL completes it)
    batch = CodeBatchFactory(prefix="CM", requested=3_000)
    services.batch_generate(batch_id=batch.pk, chunk_size=1_000, max_chunks=1, parallel=1)
    db = settings.DATABASES["default"]
    late = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    try:
        late.execute(
            "INSERT INTO coupons_code (coupon_id, code, max_uses, uses, customer_id, active, "
            "created_at, batch_id) SELECT %s, 'CMLATE' || lpad(g::text, 8, '0'), 1, 0, NULL, "
            "true, now(), %s FROM generate_series(1, 1000) g",
            [batch.coupon_id, batch.pk],
        )
        late.execute(
            "UPDATE codebatches_codebatch SET generated = generated + 1000, "
            "updated_at = now() WHERE id = %s",
            [batch.pk],
        )
        # when the rerun starts meanwhile, and the late chunk commits a moment later
        result: list = []
        rerun = threading.Thread(
            target=lambda: (
                result.append(
                    services.batch_generate(batch_id=batch.pk, chunk_size=1_000, parallel=1)
                ),
                connections.close_all(),
            )
        )
        rerun.start()
        time.sleep(1.0)
        late.commit()
        rerun.join(30)
    finally:
        late.close()
    # then the rerun counted the late chunk: exactly the requested codes, not one more
    assert result, "the rerun did not return"
    assert result[0].status == CodeBatch.Status.DONE, result
    assert state(batch) == ("done", 3_000, 3_000, 3_000)
