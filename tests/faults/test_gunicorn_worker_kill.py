"""A gunicorn worker SIGKILLed in the middle of a burst of applies: no use is counted
twice, every order ends with exactly one reservation, and when the holds run out the
expiry job gives back exactly the uses that were never confirmed.

Clients behave like a real storefront: a request cut off by the dying worker is retried
with the same Idempotency-Key and order. A key whose first request died after claiming
its idempotency record is answered `409 idempotency_in_progress` until the record is
stale (IDEMPOTENCY_STALE_SECONDS, 60 s); the test moves that record's clock back
instead of sleeping, exactly as it moves reservation holds by using a 2 s TTL.
"""

import http.client
import os
import queue
import signal
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from core.models import ApiKey, IdempotencyRecord
from coupons import services
from coupons.models import Code, Coupon, Redemption, RedemptionStatus
from coupons.tests.factories import CouponFactory
from tests.faults.conftest import pid_alive, service_env, subprocess_database_url, wait_until
from tests.support import cart

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

APPLY = "/api/v1/coupons/apply"
ORDERS = 240
CLIENTS = 8
WORKERS = 3
CONFIRMED = 20
MAX_KILLS = 4
BURST_TIMEOUT = 90.0
CUT_OFF = (OSError, http.client.HTTPException)  # what a client sees when a worker dies


def test_worker_killed_mid_burst_counts_each_use_once(gunicorn, private_redis):  # noqa: C901 - one scenario; the branches are its client helpers
    # given a coupon with a high limit, a storefront key, and gunicorn with 3 workers
    # whose reservations are held for 2 seconds
    coupon = CouponFactory(code="SURGE", percent_bp=1000, max_uses_total=10_000)
    _, key = ApiKey.objects.create_key(name="faults", scopes=["storefront"])
    auth = {"Authorization": f"Api-Key {key}"}
    redis = private_redis()
    web = gunicorn(
        service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            COUPON_RESERVATION_TTL="2",
            IDEMPOTENCY_WAIT_SECONDS="1",
        ),
        workers=WORKERS,
    )

    def request(i: int):
        body = {
            "coupon_code": "SURGE",
            "order_id": f"o-{i}",
            "user_id": f"u-{i}",
            "cart": cart(("SKU-1", "books", "40.00", 1)),
        }
        return web.call(
            "POST", APPLY, body, timeout=30, headers={**auth, "Idempotency-Key": f"k-{i}"}
        )

    final: dict[int, object] = {}
    cut_off: Counter = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(ORDERS):
        todo.put(i)
    deadline = time.monotonic() + BURST_TIMEOUT

    def settle(i: int) -> None:
        """Send order i until it gets an answer; retry a cut-off request as is."""
        while time.monotonic() < deadline:
            try:
                reply = request(i)
            except CUT_OFF as exc:
                with lock:
                    cut_off[type(exc).__name__] += 1
                time.sleep(0.05)
                continue
            with lock:
                if reply.status == 200 or (
                    reply.status == 409
                    and reply.json()["error"]["code"] == "idempotency_in_progress"
                ):
                    final[i] = reply
                else:
                    unexpected.append(f"o-{i}: {reply.status} {reply.body[:300]!r}")
            return
        with lock:
            unexpected.append(f"o-{i}: no answer before the deadline")

    def client() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            settle(i)

    # when ~8 clients send applies and workers are SIGKILLed while they run
    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    killed: list[int] = []
    for round_ in range(MAX_KILLS):
        wait_until(
            lambda r=round_: len(final) >= ORDERS * (r + 1) // (MAX_KILLS + 2),
            timeout=BURST_TIMEOUT,
            what="the burst to progress",
            interval=0.01,
        )
        victim = sorted(web.worker_pids())[round_ % WORKERS]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        wait_until(
            lambda v=victim: (
                not pid_alive(v)
                and len(web.worker_pids()) == WORKERS
                and v not in web.worker_pids()
            ),
            timeout=20,
            what="the master to replace the killed worker",
        )
        time.sleep(0.2)
        with lock:
            if sum(cut_off.values()) and round_ >= 1:
                break
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients did not finish in time"
    assert not unexpected, unexpected[:5]
    assert len(final) == ORDERS

    # then requests were really cut off, and the workers were replaced
    assert sum(cut_off.values()) >= 1, f"no request was interrupted by {len(killed)} kills"
    assert not set(web.worker_pids()) & set(killed)
    assert len(web.worker_pids()) == WORKERS
    assert web.service.alive()

    # when the orders whose first request died after claiming its key are retried once the
    # claim is stale (the record's clock moved back past IDEMPOTENCY_STALE_SECONDS)
    stuck = sorted(i for i, reply in final.items() if reply.status == 409)
    IdempotencyRecord.objects.filter(state=IdempotencyRecord.State.STARTED).update(
        updated_at=F("updated_at") - timedelta(minutes=5)
    )
    for i in stuck:
        reply = request(i)
        assert reply.status == 200, (i, reply.status, reply.body)
        final[i] = reply

    # then every order holds exactly one reservation, counted exactly once
    ids = {}
    for i, reply in final.items():
        body = reply.json()
        assert body["order_id"] == f"o-{i}", body
        assert len(body["redemptions"]) == 1, body
        ids[i] = body["redemptions"][0]["id"]
    assert len(set(ids.values())) == ORDERS
    rows = list(Redemption.objects.filter(coupon=coupon).values_list("id", "order_id", "status"))
    assert len(rows) == ORDERS
    assert Counter(order for _, order, _ in rows) == Counter(f"o-{i}" for i in range(ORDERS))
    assert {str(pk) for pk, _, _ in rows} == set(ids.values())
    assert {status for _, _, status in rows} == {RedemptionStatus.RESERVED}
    coupon.refresh_from_db()
    code = Code.objects.get(code="SURGE")
    assert (coupon.uses, code.uses) == (ORDERS, ORDERS)
    records = IdempotencyRecord.objects.filter(principal__startswith="api_key:")
    assert Counter(records.values_list("state", "response_status")) == {
        (IdempotencyRecord.State.DONE, 200): ORDERS
    }

    # when some orders are paid and the other holds run out
    for i in range(CONFIRMED):
        reply = web.call("POST", f"/api/v1/orders/o-{i}/confirm", headers=auth)
        assert reply.status == 200, reply.body
        assert reply.json()["status"] == "confirmed", reply.body
    latest = max(Redemption.objects.filter(coupon=coupon).values_list("expires_at", flat=True))
    wait_until(lambda: timezone.now() > latest, timeout=10, what="the 2 s holds to run out")
    given_back = services.redemptions_expire_stale()

    # then exactly the unconfirmed uses come back, once
    assert given_back == ORDERS - CONFIRMED
    assert services.redemptions_expire_stale() == 0
    coupon.refresh_from_db()
    code.refresh_from_db()
    assert (coupon.uses, code.uses) == (CONFIRMED, CONFIRMED)
    assert Counter(Redemption.objects.filter(coupon=coupon).values_list("status", flat=True)) == {
        RedemptionStatus.CONFIRMED: CONFIRMED,
        RedemptionStatus.EXPIRED: ORDERS - CONFIRMED,
    }
    assert Coupon.objects.filter(pk=coupon.pk, uses__lt=0).count() == 0
    print(
        f"\nworker kill: {len(killed)} kills, cut off {dict(cut_off)}, "
        f"{len(stuck)} keys stuck in progress until stale"
    )
