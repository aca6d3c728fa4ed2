"""Idempotency-Key under concurrency (SPEC rule 3): the same request sent many times at
once, from threads with their own PostgreSQL connections, runs the operation once; every
answer is that one result (or `409 idempotency_in_progress`), never a second redemption
and never a 5xx."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from django.test import override_settings

from core.models import IdempotencyRecord
from coupons.models import Coupon, Redemption
from coupons.tests.factories import CouponFactory
from tests.race import api_key, client_for, race, unexpected
from tests.support import cart

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/coupons/apply"
REPLAYED = "Idempotent-Replayed"


def apply_body(order_id: str = "order-1", user_id: str = "u-1") -> dict:
    return {
        "coupon_code": "IDEM",
        "user_id": user_id,
        "order_id": order_id,
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }


def post(key: str, idempotency_key: str, body: dict):
    return client_for(key).post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key)


def error_code(response) -> str | None:
    return (response.json().get("error") or {}).get("code")


@pytest.mark.parametrize("wait_seconds", [5.0, 0.0], ids=["duplicates-wait", "no-wait"])
def test_same_key_sent_30_times_at_once_runs_once(wait_seconds):
    # given a limited coupon and one storefront key
    coupon = CouponFactory(code="IDEM", max_uses_total=10)
    key = api_key(["storefront"])
    body = apply_body()
    # when the same apply with the same Idempotency-Key arrives 30 times at once
    with override_settings(IDEMPOTENCY_WAIT_SECONDS=wait_seconds):
        outcomes = race(lambda _: post(key, "checkout-1", body), range(30), workers=30)

    # then no call failed and each answer is the one result or "still in progress"
    assert not unexpected(outcomes), unexpected(outcomes)
    responses = [o.value for o in outcomes]
    by_status = Counter(x.status_code for x in responses)
    assert set(by_status) <= {200, 409}, Counter(
        (x.status_code, x.content[:160]) for x in responses
    )
    busy = [x for x in responses if x.status_code == 409]
    assert {error_code(x) for x in busy} <= {"idempotency_in_progress"}
    assert all(x.headers.get("Retry-After") == "1" for x in busy)
    ok = [x for x in responses if x.status_code == 200]
    # (compared as JSON: the stored copy comes back from jsonb with its keys reordered)
    bodies = {json.dumps(x.json(), sort_keys=True) for x in ok}
    assert len(bodies) == 1, bodies
    first = ok[0].json()
    assert first["applied"] is True
    assert first["order_id"] == "order-1"
    # exactly one call ran the operation; every other 200 is a marked replay
    assert sum(x.headers.get(REPLAYED) is None for x in ok) == 1
    assert all(x.headers.get(REPLAYED) in (None, "true") for x in ok)
    # and the operation ran once
    assert Redemption.objects.count() == 1
    assert str(Redemption.objects.get().pk) == first["redemptions"][0]["id"]
    coupon.refresh_from_db()
    assert coupon.uses == 1
    record = IdempotencyRecord.objects.get()
    assert (record.key, record.state) == ("checkout-1", IdempotencyRecord.State.DONE)

    # when the same request is replayed after it completed
    replay = post(key, "checkout-1", body)
    # then it gets the identical answer, marked as a replay
    assert replay.status_code == 200
    assert replay.headers.get(REPLAYED) == "true"
    assert replay.json() == first

    # when the key is reused with another body
    reused = post(key, "checkout-1", apply_body(order_id="order-2"))
    # then it is refused and nothing more is applied
    assert reused.status_code == 409
    assert error_code(reused) == "idempotency_key_reused"
    assert Redemption.objects.count() == 1
    assert Coupon.objects.get(pk=coupon.pk).uses == 1


def test_same_key_with_two_bodies_at_once_runs_one_of_them():
    # given a limited coupon and one storefront key
    coupon = CouponFactory(code="IDEM", max_uses_total=10)
    key = api_key(["storefront"])
    bodies = {"a": apply_body(order_id="order-a"), "b": apply_body(order_id="order-b")}
    # when one Idempotency-Key arrives 20 times with body A and 20 times with body B
    jobs = ["a", "b"] * 20
    random.Random(2).shuffle(jobs)
    outcomes = race(lambda which: post(key, "checkout-ab", bodies[which]), jobs)

    # then exactly one of the two requests ran, once
    assert not unexpected(outcomes), unexpected(outcomes)
    assert Redemption.objects.count() == 1
    winner = "a" if Redemption.objects.get().order_id == "order-a" else "b"
    coupon.refresh_from_db()
    assert coupon.uses == 1
    answers = Counter()
    for which, o in zip(jobs, outcomes, strict=True):
        x = o.value
        code = error_code(x) if x.status_code != 200 else None
        answers[(which == winner, x.status_code, code)] += 1
        if which == winner and x.status_code == 200:
            assert x.json()["order_id"] == f"order-{winner}"
    # the winner's copies got its result (or "in progress"); the other body is refused
    assert set(answers) <= {
        (True, 200, None),
        (True, 409, "idempotency_in_progress"),
        (False, 409, "idempotency_key_reused"),
    }, answers
    assert answers[(False, 409, "idempotency_key_reused")] == 20
    assert answers[(True, 200, None)] >= 1
