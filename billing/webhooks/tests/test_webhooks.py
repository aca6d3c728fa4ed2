"""POST /api/v1/billing/webhooks/stripe (API.md "Provider webhooks"): payloads signed as
Stripe signs them; the signature is the only authentication; each event stored once and
processed once, even when delivered again or from many connections at once; an older
event never moves a payment's state back."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter

import pytest
from django.test import Client

from billing import services as billing_services
from billing.models import Invoice, PaymentAttempt, Plan, Subscription
from billing.payments import gateway
from billing.tests import support as t
from billing.webhooks import services
from billing.webhooks.models import WebhookEvent
from core.errors import Unavailable
from tests.race import race, unexpected

URL = "/api/v1/billing/webhooks/stripe"
SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def sign(body: str, timestamp: int | None = None, secret: str = SECRET) -> str:
    """The Stripe-Signature header Stripe sends: t=<ts>,v1=<HMAC-SHA256 of "<t>.<body>">."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def deliver(event: dict | str, *, signature: str | None = None, timestamp: int | None = None):
    """One delivery from a fresh client that enforces CSRF, with no credentials."""
    body = event if isinstance(event, str) else json.dumps(event)
    header = sign(body, timestamp) if signature is None else signature
    client = Client(enforce_csrf_checks=True)
    return client.post(
        URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def event(kind: str, obj: dict, *, event_id: str | None = None, created: int | None = None):
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "type": kind,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_123", "idempotency_key": None},
        "data": {"object": obj},
    }


def intent(attempt: PaymentAttempt, *, failed: bool = False, **extra) -> dict:
    obj = {
        "id": "pi_3Test",
        "object": "payment_intent",
        "amount": attempt.amount_minor,
        "currency": attempt.currency.lower(),
        "status": "requires_payment_method" if failed else "succeeded",
        "latest_charge": "ch_3Test",
        "metadata": {"attempt_id": str(attempt.pk)},
    }
    if failed:
        obj["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        }
    return {**obj, **extra}


def pending_attempt(customer_id: str = "u-1") -> PaymentAttempt:
    """A subscribe whose first charge got no answer from the gateway: the subscription
    `incomplete`, its first invoice `open`, one attempt `pending` (what a webhook settles)."""
    if not Plan.objects.filter(code="pro").exists():
        t.plan("pro", 2900)
    t.customer(customer_id)
    gateway.set_fault("error")
    try:
        with pytest.raises(Unavailable):
            billing_services.subscription_create(customer_id=customer_id, plan_code="pro")
    finally:
        gateway.set_fault(None)
    return PaymentAttempt.objects.get(invoice__customer__customer_id=customer_id)


@pytest.fixture
def count_records(monkeypatch):
    """How many times processing recorded a payment result (billing's attempt_record)."""
    calls: list = []
    lock = threading.Lock()
    record = services.payments.attempt_record

    def counted(**kwargs):
        with lock:
            calls.append(kwargs["attempt_id"])
        return record(**kwargs)

    monkeypatch.setattr(services.payments, "attempt_record", counted)
    return calls


def _error(response) -> dict:
    return response.json()["error"]


# --- signatures -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_bad_signature_is_400_and_stores_nothing():
    body = json.dumps(event("payment_intent.succeeded", {"id": "pi_1"}))
    response = deliver(body, signature=sign(body, secret="whsec_someone_else"))
    assert response.status_code == 400, response.content
    assert _error(response)["code"] == "invalid_signature"
    assert _error(response)["fields"] == {}
    # a body changed after signing does not verify either
    tampered = deliver(body.replace("pi_1", "pi_2"), signature=sign(body))
    assert tampered.status_code == 400
    assert _error(tampered)["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["", "garbage", "t=123", "v1=abc", "t=x,v1=abc"])
def test_a_missing_or_malformed_signature_header_is_400(header):
    response = deliver(event("charge.succeeded", {"id": "ch_1"}), signature=header)
    assert response.status_code == 400, response.content
    assert _error(response)["code"] == "invalid_signature"


@pytest.mark.django_db
def test_no_configured_secret_refuses_everything(settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = json.dumps(event("charge.succeeded", {"id": "ch_1"}))
    response = deliver(body, signature=sign(body, secret=""))
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_signature_older_than_five_minutes_is_400():
    stale = int(time.time()) - 301
    response = deliver(event("charge.succeeded", {"id": "ch_1"}), timestamp=stale)
    assert response.status_code == 400, response.content
    assert _error(response)["code"] == "invalid_signature"
    assert "5 minutes" in _error(response)["message"]
    # within the tolerance it is accepted
    assert deliver(event("charge.succeeded", {"id": "ch_1"}), timestamp=stale + 60).status_code == (
        200
    )


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', "null"])
def test_a_signed_body_that_is_not_a_json_object_is_400(body):
    response = deliver(body)
    assert response.status_code == 400, response.content
    assert _error(response)["code"] == "invalid_request"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"),
        ({"type": 7}, "type"),
        ({"created": "yesterday"}, "created"),
        ({"livemode": "no"}, "livemode"),
        ({"data": {}}, "data"),
    ],
)
def test_a_signed_object_that_is_not_an_event_is_400(change, field):
    response = deliver({**event("charge.succeeded", {"id": "ch_1"}), **change})
    assert response.status_code == 400, response.content
    assert _error(response)["code"] == "invalid_request"
    assert field in _error(response)["fields"]


def test_the_endpoint_needs_no_api_key_and_documents_none():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"][URL]["post"]
    assert operation["operationId"] == "billing_webhooks_stripe"
    assert not operation.get("security")  # and the schema has no global requirement
    assert "security" not in schema
    assert {"200", "400"} <= set(operation["responses"])


# --- storing and processing -------------------------------------------------------------


@pytest.mark.django_db
def test_a_succeeded_event_settles_the_pending_attempt(count_records):
    # given a first charge the gateway never answered
    attempt = pending_attempt()
    assert Subscription.objects.get().status == "incomplete"
    # when Stripe reports the payment intent succeeded
    sent = event("payment_intent.succeeded", intent(attempt))
    response = deliver(sent)
    # then the invoice is paid and the subscription active
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"
    assert attempt.provider_ref == "ch_3Test"
    invoice = Invoice.objects.get(pk=attempt.invoice_id)
    assert invoice.status == "paid"
    assert invoice.amount_paid_minor == 2900
    assert Subscription.objects.get().status == "active"
    stored = WebhookEvent.objects.get()
    assert stored.event_id == sent["id"]
    assert stored.type == "payment_intent.succeeded"
    assert stored.attempt_id == attempt.pk
    assert int(stored.created.timestamp()) == sent["created"]
    assert stored.livemode is False
    assert stored.payload == sent
    assert stored.processed_at is not None
    assert stored.outcome == "recorded: paid"
    assert count_records == [attempt.pk]


@pytest.mark.django_db
def test_a_failed_charge_event_declines_the_pending_attempt():
    attempt = pending_attempt()
    charge = {
        "id": "ch_3Fail",
        "object": "charge",
        "amount": attempt.amount_minor,
        "currency": "usd",
        "status": "failed",
        "failure_code": "card_declined",
        "failure_message": "Your card was declined.",
        "outcome": {"type": "issuer_declined", "reason": "generic_decline"},
        "metadata": {"attempt_id": str(attempt.pk)},
    }
    response = deliver(event("charge.failed", charge))
    assert response.status_code == 200, response.content
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code) == ("failed", "card_declined")
    assert attempt.failure_message == "Your card was declined."
    # the first charge of a subscribe: the invoice is void and the subscription expired
    assert Invoice.objects.get(pk=attempt.invoice_id).status == "void"
    assert Subscription.objects.get().status == "expired"
    assert WebhookEvent.objects.get().outcome == "recorded: declined (card_declined), expired"


@pytest.mark.django_db
def test_a_payment_failed_event_takes_the_specific_decline_code():
    attempt = pending_attempt()
    assert deliver(event("payment_intent.payment_failed", intent(attempt, failed=True))).json() == {
        "received": True,
        "duplicate": False,
    }
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code) == ("failed", "insufficient_funds")


@pytest.mark.django_db
def test_the_attempt_may_be_named_by_the_requests_idempotency_key():
    attempt = pending_attempt()
    sent = event("charge.succeeded", intent(attempt, metadata={}, id="ch_9", object="charge"))
    sent["request"]["idempotency_key"] = str(attempt.pk)
    assert deliver(sent).status_code == 200
    attempt.refresh_from_db()
    assert (attempt.status, attempt.provider_ref) == ("succeeded", "ch_9")


@pytest.mark.django_db
def test_a_redelivery_is_200_and_processed_once(count_records):
    attempt = pending_attempt()
    sent = event("payment_intent.succeeded", intent(attempt))
    first = deliver(sent)
    processed = WebhookEvent.objects.get()
    # when Stripe delivers the same event again (later, with a new signature)
    again = deliver(sent, timestamp=int(time.time()) + 1)
    # then it is 200 and does nothing
    assert first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200, again.content
    assert again.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.count() == 1
    again_row = WebhookEvent.objects.get()
    assert (again_row.processed_at, again_row.outcome) == (
        processed.processed_at,
        processed.outcome,
    )
    assert count_records == [attempt.pk]
    assert PaymentAttempt.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_an_event_stored_but_not_processed_is_processed_by_its_redelivery(count_records):
    # given a crash after the event was stored (the provider got no 200 and retries)
    attempt = pending_attempt()
    sent = event("payment_intent.succeeded", intent(attempt))
    services._store(services.event_parse(sent))
    assert WebhookEvent.objects.get().processed_at is None
    # when it is delivered again
    response = deliver(sent)
    # then that delivery processes it, once
    assert response.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.get().outcome == "recorded: paid"
    assert Invoice.objects.get(pk=attempt.invoice_id).status == "paid"
    assert count_records == [attempt.pk]
    deliver(sent)
    assert count_records == [attempt.pk]


@pytest.mark.django_db
def test_a_failed_event_older_than_an_applied_success_does_not_move_it_back(count_records):
    attempt = pending_attempt()
    now = int(time.time())
    assert deliver(event("payment_intent.succeeded", intent(attempt), created=now)).status_code == (
        200
    )
    # when the failure of an earlier try arrives late (Stripe does not keep order)
    late = event("payment_intent.payment_failed", intent(attempt, failed=True), created=now - 60)
    response = deliver(late)
    # then it is accepted and changes nothing
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"
    assert Invoice.objects.get(pk=attempt.invoice_id).status == "paid"
    assert Subscription.objects.get().status == "active"
    assert WebhookEvent.objects.get(event_id=late["id"]).outcome == (
        "ignored: older than an event already processed for this attempt"
    )
    assert count_records == [attempt.pk]


@pytest.mark.django_db
def test_an_older_event_is_ignored_even_while_the_attempt_is_pending():
    # given a newer event for the attempt was processed without settling it (its amount
    # is not the attempt's)
    attempt = pending_attempt()
    now = int(time.time())
    wrong = event("payment_intent.succeeded", intent(attempt, amount=1), created=now)
    deliver(wrong)
    assert WebhookEvent.objects.get().outcome == (
        "ignored: amount or currency differs from the attempt"
    )
    # when an older failure arrives, it is ignored: the attempt stays pending
    deliver(event("payment_intent.payment_failed", intent(attempt, failed=True), created=now - 5))
    attempt.refresh_from_db()
    assert attempt.status == "pending"
    # and an event as new as the newest known one still settles it
    deliver(event("payment_intent.succeeded", intent(attempt), created=now))
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"


@pytest.mark.django_db
def test_a_settled_attempt_is_never_changed_by_a_webhook(count_records):
    # given the gateway's own answer settled the attempt (declined)
    attempt = pending_attempt()
    billing_services.payments.attempt_record(
        attempt_id=attempt.pk,
        result=gateway.ChargeResult(succeeded=False, failure_code="card_declined"),
    )
    count_records.clear()
    # when a newer success arrives for it
    response = deliver(event("payment_intent.succeeded", intent(attempt)))
    # then it is stored, 200, and nothing moves (logged for a person to look at)
    assert response.status_code == 200
    attempt.refresh_from_db()
    assert attempt.status == "failed"
    assert WebhookEvent.objects.get().outcome == "ignored: attempt already failed"
    assert count_records == []


@pytest.mark.django_db
def test_an_unknown_type_is_200_stored_and_ignored():
    sent = event("customer.created", {"id": "cus_1", "object": "customer"})
    response = deliver(sent)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    stored = WebhookEvent.objects.get()
    assert (stored.type, stored.outcome, stored.attempt_id) == (
        "customer.created",
        "ignored: unhandled type",
        None,
    )
    assert stored.processed_at is not None


@pytest.mark.django_db
def test_a_payment_event_naming_no_attempt_of_ours_is_ignored():
    deliver(event("charge.succeeded", {"id": "ch_1", "metadata": {"attempt_id": "nope"}}))
    deliver(
        event("charge.succeeded", {"id": "ch_2", "metadata": {"attempt_id": str(uuid.uuid4())}})
    )
    assert sorted(WebhookEvent.objects.values_list("outcome", flat=True)) == [
        "ignored: names no payment attempt",
        "ignored: no such payment attempt",
    ]


@pytest.mark.django_db
def test_charge_refunded_is_stored_and_logged_only(caplog):
    attempt = pending_attempt()
    deliver(event("payment_intent.succeeded", intent(attempt)))
    refund = {
        "id": "ch_3Test",
        "object": "charge",
        "amount": 2900,
        "amount_refunded": 2900,
        "currency": "usd",
        "refunded": True,
        "metadata": {"attempt_id": str(attempt.pk)},
    }
    with caplog.at_level("INFO", logger="billing.webhooks.services"):
        response = deliver(event("charge.refunded", refund))
    assert response.status_code == 200
    assert "refunded 2900" in caplog.text
    invoice = Invoice.objects.get(pk=attempt.invoice_id)
    assert (invoice.status, invoice.amount_refunded_minor) == ("paid", 0)
    assert WebhookEvent.objects.get(type="charge.refunded").outcome == (
        "logged: refunds are initiated by the engine"
    )


@pytest.mark.django_db
def test_events_of_one_payment_wait_their_turn(monkeypatch):
    """The lock on a payment is held by another delivery past the wait: 503, the event
    stays stored and unprocessed, and the provider's next delivery processes it."""
    attempt = pending_attempt()
    sent = event("payment_intent.succeeded", intent(attempt))
    monkeypatch.setattr(services, "LOCK_WAIT_SECONDS", 0.0)
    other = _other_session_holding(str(attempt.pk))
    try:
        busy = deliver(sent)
    finally:
        other.close()
    assert busy.status_code == 503, busy.content
    assert _error(busy)["code"] == "webhook_busy"
    assert WebhookEvent.objects.get().processed_at is None
    assert deliver(sent).json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.get().outcome == "recorded: paid"


def _other_session_holding(key: str):
    """A second PostgreSQL session that holds the advisory lock on `key`."""
    from django.db import connection

    other = connection.copy()
    other.connect()
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [services.LOCK_NAMESPACE, key])
    return other


# --- the same event from many connections at once ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_event_from_eight_connections_is_stored_once_and_processed_once(count_records):
    attempt = pending_attempt()
    sent = event("payment_intent.succeeded", intent(attempt))
    body = json.dumps(sent)
    header = sign(body)
    # when 8 deliveries of it arrive at once, each on its own database connection
    outcomes = race(lambda _: deliver(body, signature=header), range(8), workers=8)
    # then all are 200, one stored and processed it, the others did nothing
    assert not unexpected(outcomes), unexpected(outcomes)
    assert Counter(o.value.status_code for o in outcomes) == {200: 8}
    duplicates = Counter(o.value.json()["duplicate"] for o in outcomes)
    assert duplicates == {False: 1, True: 7}, duplicates
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().outcome == "recorded: paid"
    assert count_records == [attempt.pk]
    assert Invoice.objects.get(pk=attempt.invoice_id).status == "paid"
    assert PaymentAttempt.objects.get().status == "succeeded"
