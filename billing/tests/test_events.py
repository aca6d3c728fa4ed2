"""The outbox (billing/events.py): an event is written with its change and only with it,
delivered after commit to the consumers of its type, kept undelivered when a consumer
fails, and delivered later by the sweeper; a redelivery reaches consumers again (at
least once), so consumers key on the event id."""

import pytest
from django.db import transaction

from billing import events
from billing.models import OutboxEvent
from billing.tests import support as t

pytestmark = pytest.mark.django_db

# The test case's transaction stands for the change's; on_commit hooks run when captured.


@pytest.fixture
def consumer():
    seen: list[tuple[int, str, dict]] = []
    state = {"fail": False}

    def consume(event_id, event_type, payload):
        if state["fail"]:
            raise RuntimeError("consumer down")
        seen.append((event_id, event_type, payload))

    events.subscribe(events.INVOICE_PAID, consume)
    yield seen, state
    events.unsubscribe(events.INVOICE_PAID, consume)


def test_a_paid_invoice_reaches_its_consumer_once_after_commit(
    storefront, consumer, django_capture_on_commit_callbacks
):
    seen, _ = consumer
    t.plan("pro", 2900)
    t.customer("u-1")
    # eager Celery (test settings): delivery runs in the on_commit hook of the change
    with django_capture_on_commit_callbacks(execute=True):
        t.subscribe(storefront, customer_id="u-1", plan="pro")
    paid = [x for x in seen if x[1] == events.INVOICE_PAID]
    assert len(paid) == 1
    assert paid[0][2]["customer_id"] == "u-1"
    assert paid[0][2]["total"] == "29.00"
    assert OutboxEvent.objects.filter(delivered_at__isnull=True).count() == 0


def test_an_event_of_a_rolled_back_change_is_never_written_nor_delivered(
    consumer, django_capture_on_commit_callbacks
):
    seen, _ = consumer

    def failing_change():
        with transaction.atomic():
            events.emit(events.INVOICE_PAID, {"invoice_id": "x"}, at=t.at("2026-01-01T00:00:00Z"))
            raise RuntimeError("the change failed")

    with django_capture_on_commit_callbacks(execute=True) as hooks, pytest.raises(RuntimeError):
        failing_change()
    assert hooks == []
    assert not OutboxEvent.objects.exists()
    assert seen == []


def test_a_failing_consumer_leaves_the_event_for_the_sweeper(
    consumer, django_capture_on_commit_callbacks
):
    seen, state = consumer
    state["fail"] = True
    with django_capture_on_commit_callbacks(execute=True):
        event = events.emit(events.INVOICE_PAID, {"n": 1}, at=t.at("2026-01-01T00:00:00Z"))
    event.refresh_from_db()
    assert event.delivered_at is None
    assert event.attempts == 1
    assert "consumer down" in event.last_error
    # the consumer recovers; the sweeper (beat) delivers what is older than its cutoff
    state["fail"] = False
    assert events.sweep(older_than_seconds=0) == 1
    event.refresh_from_db()
    assert event.delivered_at is not None
    assert [x[0] for x in seen] == [event.pk]
    assert events.sweep(older_than_seconds=0) == 0


def test_unknown_event_types_are_refused():
    with pytest.raises(ValueError, match="unknown billing event"):
        events.emit("invoice.exploded", {}, at=t.at("2026-01-01T00:00:00Z"))
