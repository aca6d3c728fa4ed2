"""The checkout's row locks are FOR NO KEY UPDATE: while an apply holds a hot coupon (or
its code, or the customer), inserts that only point at those rows (claim tokens, a
50,000-code chunk, another order's redemption) take their foreign-key share lock and go
on instead of queueing behind the checkout. Proven with a lock_timeout: the insert would
fail after 1 s if it had to wait."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from coupons import locks
from coupons.models import Code, Redemption
from coupons.tests.factories import CouponFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def hold_while(lock, inside) -> None:
    """Run `lock()` in another connection's open transaction, then `inside()` here."""
    locked, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def holder():
        try:
            with transaction.atomic():
                lock()
                locked.set()
                done.wait(30)
        except BaseException as exc:  # reported below
            errors.append(exc)
            locked.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(30), errors
        assert not errors, errors
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
            inside()
    finally:
        done.set()
        thread.join(30)


def test_a_code_insert_does_not_wait_for_a_locked_coupon():
    coupon = CouponFactory(code="HOT")
    hold_while(
        lambda: locks.coupons_lock([coupon.pk]),
        lambda: Code.objects.create(coupon=coupon, code="TOKEN-1"),
    )
    assert Code.objects.filter(code="TOKEN-1").exists()


def test_a_redemption_insert_does_not_wait_for_a_locked_code_or_customer():
    coupon = CouponFactory(code="HOT2")
    code = coupon.codes.get()
    customer = CustomerFactory()

    def lock():
        locks.coupons_lock([coupon.pk])
        locks.codes_lock([code.pk])
        locks.customers_lock([customer.pk])

    hold_while(
        lock,
        lambda: Redemption.objects.create(
            coupon=coupon,
            code=code,
            customer=customer,
            order_id="other-order",
            apply_id=uuid.uuid4(),
            currency="USD",
            discount_minor=100,
            order_value_minor=1000,
            expires_at=timezone.now() + timedelta(minutes=5),
        ),
    )
    assert Redemption.objects.filter(order_id="other-order").exists()
