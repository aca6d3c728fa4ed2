import logging
import os
import time

import pytest
from django.db import OperationalError, transaction
from django.test import override_settings

from coupons.analytics import events
from coupons.analytics.models import CouponEvent

pytestmark = pytest.mark.django_db


def _dropped() -> float:
    return events.events_dropped._value.get()


def test_record_buffers_without_io_until_flush():
    # given
    events.record(
        "cart",
        customer_id="u-1",
        currency="USD",
        order_value_minor=15000,
        payload={"customer": {"id": "u-1"}, "cart": {"currency": "USD", "items": []}},
    )
    events.record(
        "validate",
        code="SUMMER25",
        coupon_id=7,
        outcome="valid",
        currency="USD",
        discount_minor=3750,
    )
    assert CouponEvent.objects.count() == 0
    assert events.pending() == 2
    # when
    written = events.flush()
    # then
    assert written == 2
    assert events.pending() == 0
    cart = CouponEvent.objects.get(kind="cart")
    assert (cart.customer_id, cart.order_value_minor, cart.payload["customer"]) == (
        "u-1",
        15000,
        {"id": "u-1"},
    )
    validate = CouponEvent.objects.get(kind="validate")
    assert (
        validate.code,
        validate.coupon_id,
        validate.outcome,
        validate.discount_minor,
        validate.new_customer,
        validate.payload,
    ) == ("SUMMER25", 7, "valid", 3750, False, None)
    assert events.flush() == 0


def test_flush_cuts_over_long_text_instead_of_failing_the_batch():
    events.record("validate", code="X" * 80, outcome="o" * 50, customer_id="c" * 120)
    assert events.flush() == 1
    event = CouponEvent.objects.get()
    assert (len(event.code), len(event.outcome), len(event.customer_id)) == (64, 40, 100)


def test_record_rejects_unknown_fields():
    with pytest.raises(TypeError):
        events.record("validate", coupon="X")


@override_settings(ANALYTICS_ENABLED=False)
def test_disabled_records_and_writes_nothing():
    events.record("validate", code="X")
    events.write([{"kind": "apply", "code": "X"}])
    assert events.pending() == 0
    assert CouponEvent.objects.count() == 0


def test_events_survive_a_failed_flush_and_keep_their_order(monkeypatch, caplog):
    # given: the database is down for two flushes
    real_copy = events._copy
    attempts = []

    def down(batch):
        attempts.append(len(batch))
        raise OperationalError("connection refused")

    monkeypatch.setattr(events, "_copy", down)
    events.record("validate", code="A")
    with caplog.at_level(logging.WARNING, logger="coupons.analytics.events"):
        assert events.flush() == 0
        events.record("validate", code="B")
        assert events.flush() == 0
    # then: kept, and the outage was logged once
    assert attempts == [1, 2]
    assert events.pending() == 2
    assert sum("flush failed" in r.getMessage() for r in caplog.records) == 1
    # when: it is back
    monkeypatch.setattr(events, "_copy", real_copy)
    assert events.flush() == 2
    assert list(CouponEvent.objects.order_by("id").values_list("code", flat=True)) == ["A", "B"]


@override_settings(ANALYTICS_BUFFER_MAX=3)
def test_a_full_buffer_drops_the_oldest_and_counts_them(monkeypatch, caplog):
    before = _dropped()
    with caplog.at_level(logging.WARNING, logger="coupons.analytics.events"):
        for code in "ABCDE":
            events.record("validate", code=code)
    assert _dropped() - before == 2
    assert sum("buffer full" in r.getMessage() for r in caplog.records) == 1
    # a failed flush requeues in front of newer events, then trims the oldest again
    monkeypatch.setattr(
        events, "_copy", lambda batch: (_ for _ in ()).throw(OperationalError("down"))
    )
    assert events.flush() == 0
    events.record("validate", code="F")
    assert _dropped() - before == 3
    monkeypatch.undo()
    assert events.flush() == 3
    assert list(CouponEvent.objects.order_by("id").values_list("code", flat=True)) == [
        "D",
        "E",
        "F",
    ]


def test_flush_inside_an_open_transaction_leaves_it_usable(monkeypatch):
    monkeypatch.setattr(events, "_row", lambda event: ("not a time",) + (None,) * 12)
    events.record("validate", code="A")
    before = _dropped()
    with transaction.atomic():
        assert events.flush() == 0  # an unwritable batch is dropped, not retried forever
        assert CouponEvent.objects.count() == 0  # the transaction still answers
    assert _dropped() - before == 1


def test_write_is_part_of_the_callers_transaction():
    def write_then_roll_back():
        with transaction.atomic():
            events.write([{"kind": "apply", "code": "A", "outcome": "applied", "coupon_id": 1}])
            assert CouponEvent.objects.filter(kind="apply").count() == 1
            raise RuntimeError("the redemption rolled back")

    with pytest.raises(RuntimeError, match="the redemption rolled back"):
        write_then_roll_back()
    assert CouponEvent.objects.count() == 0
    events.write(
        [
            {
                "kind": "confirm",
                "code": "A",
                "coupon_id": 1,
                "order_id": "o-1",
                "discount_minor": 500,
                "order_value_minor": 5000,
                "new_customer": True,
            }
        ]
    )
    event = CouponEvent.objects.get()
    assert (event.kind, event.order_id, event.discount_minor, event.new_customer) == (
        "confirm",
        "o-1",
        500,
        True,
    )


def test_a_forked_child_starts_empty_with_its_own_flusher():
    events.record("validate", code="A")
    assert events._thread_pid == os.getpid()
    events._after_fork_in_child()  # what os.register_at_fork runs in a child
    assert events.pending() == 0
    assert events._thread_pid == 0


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_flushes_on_its_own(monkeypatch):
    monkeypatch.setattr(events, "_thread_pid", 0)  # as in a new process: a new thread
    with override_settings(ANALYTICS_FLUSH_SECONDS=0.05):
        events.record("validate", code="BG")
        deadline = time.monotonic() + 5
        while not CouponEvent.objects.filter(code="BG").exists():
            assert time.monotonic() < deadline, "the flusher thread wrote nothing"
            time.sleep(0.02)
    time.sleep(0.2)  # the thread is back in its (now hour-long) wait
    assert events.pending() == 0


def test_payload_values_json_cannot_hold_are_handled():
    from decimal import Decimal

    events.record("cart", payload={"cart": {"shipping": Decimal("7.99")}})
    assert events.flush() == 1
    assert CouponEvent.objects.get().payload == {"cart": {"shipping": "7.99"}}
    before = _dropped()
    events.record("cart", payload={"cart": object()})
    assert events.flush() == 0  # dropped and counted: it could never be written
    assert _dropped() - before == 1
    assert events.pending() == 0
