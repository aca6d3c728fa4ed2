"""A Celery pool process SIGKILLed in the middle of the reservation-expiry task: the task
is redelivered (acks_late + reject_on_worker_lost), runs again, and every stale
reservation ends expired exactly once with the counters back at exactly zero.

A real `celery -A config worker` (prefork, one pool process) consumes from a private
redis-server and works on the pytest test database.
"""

import os
import re
import signal
import uuid

import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from coupons.models import Code, Coupon, Redemption, RedemptionStatus
from coupons.tests.factories import CouponFactory
from tests.faults.conftest import pid_alive, service_env, subprocess_database_url, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

TASK = "coupons.tasks.expire_stale_reservations"
STALE = 20_000

_SEED_SQL = """
INSERT INTO coupons_redemption
    (id, coupon_id, code_id, customer_id, order_id, apply_id, status, currency,
     discount_minor, shipping_discount_minor, order_value_minor, lines, auto, idempotency_key,
     context, expires_at, created_at)
SELECT gen_random_uuid(), %(coupon)s, %(code)s, NULL, 'stale-' || g, gen_random_uuid(),
       'reserved', 'USD', 100, 0, 1000, '[]'::jsonb, false, '', '{}'::jsonb,
       now() - interval '1 hour' + g * interval '1 millisecond', now() - interval '2 hours'
FROM generate_series(1, %(n)s) AS g
"""


def seed_stale_reservations(n: int) -> tuple[Coupon, Code]:
    """n reservations held past their expiry, with the counters that took them."""
    coupon = CouponFactory(code="STALE", max_uses_total=n)
    code = Code.objects.get(code="STALE")
    with connection.cursor() as cursor:
        cursor.execute(_SEED_SQL, {"coupon": coupon.pk, "code": code.pk, "n": n})
    # The counters the reservations took, budget included (each holds a $1.00 discount).
    Coupon.objects.filter(pk=coupon.pk).update(uses=n, budget_used_minor=100 * n)
    Code.objects.filter(pk=code.pk).update(uses=n)
    return coupon, code


def expired_count(coupon) -> int:
    return Redemption.objects.filter(coupon=coupon, status=RedemptionStatus.EXPIRED).count()


def test_pool_process_killed_mid_task_is_retried_and_gives_back_once(private_redis, celery_worker):
    # given 20,000 stale reservations and a real worker on a private broker
    coupon, code = seed_stale_reservations(STALE)
    redis = private_redis()
    worker = celery_worker(
        service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            LOG_LEVEL="INFO",
        )
    )
    broker = redis.client(1)
    task_id = str(uuid.uuid4())

    # when the expiry task is sent and its pool process is SIGKILLed while it works
    sender = Celery("faults-sender", broker=redis.url(1))
    try:
        sender.send_task(TASK, task_id=task_id)
    finally:
        sender.close()
    wait_until(
        lambda: expired_count(coupon) >= STALE // 10,
        timeout=30,
        what="the task to start expiring",
        interval=0.01,
    )
    (child,) = worker.pool_pids()
    done_before_kill = expired_count(coupon)
    killed_at = timezone.now()
    os.kill(child, signal.SIGKILL)
    assert 0 < done_before_kill < STALE, "the task finished before it could be killed"
    wait_until(lambda: not pid_alive(child), timeout=10, what="the pool process to die")

    # then the worker survives, replaces the pool process and runs the task again to the end
    wait_until(
        lambda: expired_count(coupon) == STALE,
        timeout=90,
        what="every reservation to expire",
        interval=0.2,
    )
    succeeded = wait_until(
        lambda: re.findall(
            rf"Task {TASK}\[{task_id}\] succeeded in [\d.e-]+s: (\d+)", worker.service.log()
        ),
        timeout=30,
        what="the task's success in the worker log",
    )
    wait_until(
        lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0,
        timeout=30,
        what="the message to be acknowledged",
    )
    log = worker.service.log()
    assert worker.service.alive(), worker.service.log_tail()
    assert len(worker.pool_pids()) == 1
    assert child not in worker.pool_pids()
    assert "WorkerLostError" in log, worker.service.log_tail()
    assert len(re.findall(rf"Task {TASK}\[{task_id}\] received", log)) == 2, log[-3000:]
    assert len(succeeded) == 1, log[-3000:]

    # and each reservation was given back exactly once: the first run's committed batches
    # plus the second run's count is exactly the total, and the counters are exactly zero
    first_run = Redemption.objects.filter(coupon=coupon, released_at__lt=killed_at).count()
    assert first_run >= done_before_kill
    assert first_run + int(succeeded[0]) == STALE
    assert Redemption.objects.filter(coupon=coupon, status=RedemptionStatus.RESERVED).count() == 0
    coupon.refresh_from_db()
    code.refresh_from_db()
    assert (coupon.uses, code.uses) == (0, 0)
    print(f"\ncelery kill: first run expired {first_run}, the retry {succeeded[0]}")
