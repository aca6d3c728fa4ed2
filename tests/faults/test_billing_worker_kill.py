"""A Celery pool process SIGKILLed in the middle of the renewal job (issue 13 "Faults"):
nothing is lost and nothing is duplicated. The task is redelivered (acks_late +
reject_on_worker_lost) and runs again; the killed run's open batch transaction is rolled
back by PostgreSQL; the attempts it had recorded but not yet answered are settled by the
reconciliation job with the same idempotency key. In the end every subscription has
exactly one renewal invoice, paid by exactly one charge, with gapless numbers.

A real `celery -A config worker` (prefork, one pool process) consumes from a private
redis-server and works on the pytest test database; the test gateway has 5 ms of
latency so the job is still running when the kill comes.
"""

import os
import re
import signal
import uuid
from collections import Counter

import pytest
from celery import Celery

from billing import renewals
from billing.models import Invoice, PaymentAttempt, TestGatewayCharge
from billing.payments import services as payments
from billing.tests import support as t
from tests.faults.conftest import pid_alive, service_env, subprocess_database_url, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

TASK = "billing.run_due"
SUBSCRIPTIONS = 600


def paid_renewals() -> int:
    return Invoice.objects.filter(billing_reason="subscription_cycle", status="paid").count()


def test_renewal_worker_killed_mid_batch_loses_and_duplicates_nothing(private_redis, celery_worker):
    # given 600 subscriptions due for renewal and a real worker on a private broker
    subs = t.due_subscriptions(SUBSCRIPTIONS, t.plan("pro", 2900))
    redis = private_redis()
    worker = celery_worker(
        service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            LOG_LEVEL="INFO",
            BILLING_TEST_GATEWAY_LATENCY_MS="5",
            BILLING_RENEWAL_BATCH="50",
        )
    )
    task_id = str(uuid.uuid4())

    # when the renewal job is sent and its pool process is SIGKILLed while it charges
    sender = Celery("faults-sender", broker=redis.url(1))
    try:
        sender.send_task(TASK, task_id=task_id)
    finally:
        sender.close()
    wait_until(
        lambda: paid_renewals() >= SUBSCRIPTIONS // 10,
        timeout=60,
        what="the job to start renewing",
        interval=0.01,
    )
    (child,) = worker.pool_pids()
    os.kill(child, signal.SIGKILL)
    killed_at = paid_renewals()
    assert killed_at < SUBSCRIPTIONS, "the job finished before it could be killed"
    wait_until(lambda: not pid_alive(child), timeout=10, what="the pool process to die")

    # then the task runs again to the end
    wait_until(
        lambda: re.findall(rf"Task {TASK}\[{task_id}\] succeeded", worker.service.log()),
        timeout=180,
        what="the redelivered job to succeed",
        interval=0.2,
    )
    log = worker.service.log()
    assert "WorkerLostError" in log, worker.service.log_tail()
    assert len(re.findall(rf"Task {TASK}\[{task_id}\] received", log)) == 2, log[-3000:]

    # and the next beat runs (rows the dead session still held are due again once
    # PostgreSQL dropped it) and the reconciliation settle whatever the kill left open
    def settled() -> bool:
        renewals.run_due()
        payments.attempts_reconcile(stale_seconds=0)
        return paid_renewals() == SUBSCRIPTIONS

    wait_until(settled, timeout=60, what="every renewal to be paid", interval=0.5)

    # every period invoiced once, charged once, numbered without gaps
    cycles = Invoice.objects.filter(billing_reason="subscription_cycle")
    per_sub = Counter(cycles.values_list("subscription_id", flat=True))
    assert len(per_sub) == len(subs)
    assert set(per_sub.values()) == {1}
    assert TestGatewayCharge.objects.count() == SUBSCRIPTIONS
    assert not PaymentAttempt.objects.filter(status="pending").exists()
    assert PaymentAttempt.objects.filter(status="succeeded").count() == SUBSCRIPTIONS
    numbers = sorted(int(n.split("-")[1]) for n in cycles.values_list("number", flat=True))
    assert numbers == list(range(numbers[0], numbers[0] + SUBSCRIPTIONS))
    print(f"\nbilling kill: {killed_at} renewals paid before the kill")
