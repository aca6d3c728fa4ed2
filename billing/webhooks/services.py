"""Provider webhook events: read one, store it once, process it once (API.md "Provider
webhooks"; docs/billing-webhooks.md lists what each handled type does).

1. `event_parse`: the verified event's fields, or `Invalid` (400).
2. `event_receive` stores it: one INSERT that the unique constraint
   webhookevent_once_per_provider refuses for a redelivery, however close the copies
   arrive (no read-then-write check).
3. Then it is processed under a session advisory lock on the payment attempt it is
   about (or on the event when it names none), so events of one payment take turns and
   two copies of one event cannot both process it. A payment result for a `pending`
   attempt is recorded through billing.payments.services.attempt_record, which opens its
   own transaction (so it is called outside ours); last, the event is marked processed.

A redelivery of a processed event does nothing. A stored event left unprocessed (a
crash between 2 and the end of 3: the provider got no 200 and delivers it again) is
processed by that redelivery; recording a payment result twice is harmless, since
attempt_record leaves a settled attempt alone.

Order: an event older (by the provider's `created`) than the newest event already
processed for the same attempt is ignored, and a settled attempt is never changed by a
webhook, so a late `payment_failed` cannot move a paid invoice back.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from billing.models import PaymentAttempt
from billing.payments import services as payments
from billing.payments.gateway import ChargeResult, failure_message
from billing.webhooks.models import WebhookEvent
from core.errors import Invalid, Unavailable, is_unique_violation

logger = logging.getLogger(__name__)

PROVIDER = "stripe"
# Payment results: event type -> whether the charge succeeded.
PAYMENT_RESULTS = {
    "payment_intent.succeeded": True,
    "payment_intent.payment_failed": False,
    "charge.succeeded": True,
    "charge.failed": False,
}
# Logged and stored only: refunds are initiated by the engine (billing.services).
REFUND_EVENTS = frozenset({"charge.refunded"})
HANDLED = frozenset(PAYMENT_RESULTS) | REFUND_EVENTS

# Session advisory locks in a key space of their own (codebatches and coupons use others).
LOCK_NAMESPACE = 0x57480000  # "WH"
LOCK_WAIT_SECONDS = 10.0
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class ParsedEvent:
    event_id: str
    type: str
    created: datetime
    livemode: bool
    payload: dict
    attempt_id: uuid.UUID | None


@dataclass(frozen=True)
class Received:
    duplicate: bool  # the event was stored before (a redelivery)
    outcome: str  # what processing did; "" when this call did not process it


def _invalid(field: str, message: str) -> Invalid:
    return Invalid("invalid_request", "Not a webhook event.", fields={field: [message]})


def event_parse(data: Any) -> ParsedEvent:
    """The fields a stored event needs from a verified Stripe event (a JSON object)."""
    if not isinstance(data, dict):
        raise _invalid("non_field_errors", "The body must be a JSON object.")
    event_id, kind, created = data.get("id"), data.get("type"), data.get("created")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise _invalid("id", "A string of 1 to 255 characters is required.")
    if not isinstance(kind, str) or not 0 < len(kind) <= 100:
        raise _invalid("type", "A string of 1 to 100 characters is required.")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created <= _MAX_EPOCH:
        raise _invalid("created", "A Unix time in seconds is required.")
    livemode = data.get("livemode", False)
    if not isinstance(livemode, bool):
        raise _invalid("livemode", "A boolean is required.")
    body = data.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        raise _invalid("data", "An object with an `object` is required.")
    return ParsedEvent(
        event_id=event_id,
        type=kind,
        created=datetime.fromtimestamp(created, tz=UTC),
        livemode=livemode,
        payload=data,
        attempt_id=_attempt_id(data) if kind in HANDLED else None,
    )


def _as_uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _attempt_id(data: dict) -> uuid.UUID | None:
    """Our PaymentAttempt id: the object's `metadata.attempt_id`, else the idempotency
    key of the request that caused the event (the gateway sends the attempt id as it)."""
    metadata = data["data"]["object"].get("metadata")
    if isinstance(metadata, dict):
        found = _as_uuid(metadata.get("attempt_id"))
        if found is not None:
            return found
    request = data.get("request")
    if isinstance(request, dict):
        return _as_uuid(request.get("idempotency_key"))
    return None


def event_receive(event: ParsedEvent) -> Received:
    """Store the event once and process it once (module docstring)."""
    stored, created = _store(event)
    if not created and stored.processed_at is not None:
        return Received(duplicate=True, outcome="")
    with _lock(str(stored.attempt_id or stored.event_id)) as held:
        if not held:
            # Another delivery is processing this payment; the provider delivers again.
            raise Unavailable(
                "webhook_busy",
                "This payment's events are being processed; deliver again later.",
                retryable=True,
                retry_after=5,
            )
        outcome = _process(stored.pk)
    return Received(duplicate=not created, outcome=outcome)


def _store(event: ParsedEvent) -> tuple[WebhookEvent, bool]:
    try:
        with transaction.atomic():
            row = WebhookEvent.objects.create(
                provider=PROVIDER,
                event_id=event.event_id,
                type=event.type,
                created=event.created,
                livemode=event.livemode,
                payload=event.payload,
                attempt_id=event.attempt_id,
            )
        return row, True
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
    except DataError:  # e.g. a \u0000 in a string, which jsonb cannot hold
        logger.warning("webhook event %s cannot be stored", event.event_id)
        raise Invalid("invalid_request", "The event cannot be stored as sent.") from None
    return WebhookEvent.objects.get(provider=PROVIDER, event_id=event.event_id), False


@contextlib.contextmanager
def _lock(key: str) -> Iterator[bool]:
    """Session advisory lock on (namespace, key), tried for LOCK_WAIT_SECONDS: session
    level because attempt_record runs in a transaction of its own inside it."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_NAMESPACE, key])
            held = cursor.fetchone()[0]
            if held or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [LOCK_NAMESPACE, key])


@dataclass(frozen=True)
class _Decision:
    outcome: str
    result: ChargeResult | None = None  # a payment result to record


def _process(pk: int) -> str:
    """Decide and, when nothing is to be recorded, mark processed, in one transaction;
    a payment result is recorded after it (attempt_record's own transaction), then the
    event is marked. Returns the outcome, "" when the event was already processed."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=pk)
        if event.processed_at is not None:
            return ""
        decision = _decide(event)
        if decision.result is None:
            _mark(pk, decision.outcome)
            return decision.outcome
    outcome = payments.attempt_record(attempt_id=event.attempt_id, result=decision.result)
    text = f"recorded: {outcome.status}"
    if outcome.failure_code:
        text += f" ({outcome.failure_code})"
    if outcome.effect:
        text += f", {outcome.effect}"
    with transaction.atomic():
        _mark(pk, text)
    return text


def _mark(pk: int, outcome: str) -> None:
    WebhookEvent.objects.filter(pk=pk, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=outcome[:200]
    )


def _decide(event: WebhookEvent) -> _Decision:
    obj = event.payload["data"]["object"]
    if event.type in REFUND_EVENTS:
        logger.info(
            "webhook %s: %s %s refunded %s (refunds are the engine's; logged only)",
            event.event_id,
            event.type,
            obj.get("id"),
            obj.get("amount_refunded"),
        )
        return _Decision("logged: refunds are initiated by the engine")
    if event.type not in PAYMENT_RESULTS:
        return _Decision("ignored: unhandled type")
    if event.attempt_id is None:
        return _Decision("ignored: names no payment attempt")
    attempt = PaymentAttempt.objects.filter(pk=event.attempt_id).first()
    if attempt is None:
        return _Decision("ignored: no such payment attempt")
    newest = _newest_known(event)
    if newest is not None and event.created < newest:
        return _Decision("ignored: older than an event already processed for this attempt")
    succeeded = PAYMENT_RESULTS[event.type]
    if attempt.status != PaymentAttempt.Status.PENDING:
        if succeeded and attempt.status == PaymentAttempt.Status.FAILED:
            logger.error(
                "webhook %s: %s for attempt %s, which the engine recorded as failed",
                event.event_id,
                event.type,
                attempt.pk,
            )
        return _Decision(f"ignored: attempt already {attempt.status}")
    if obj.get("amount") != attempt.amount_minor or (
        str(obj.get("currency", "")).upper() != attempt.currency
    ):
        logger.error(
            "webhook %s: %s %s for attempt %s of %s %s",
            event.event_id,
            obj.get("amount"),
            obj.get("currency"),
            attempt.pk,
            attempt.amount_minor,
            attempt.currency,
        )
        return _Decision("ignored: amount or currency differs from the attempt")
    return _Decision("record", _charge_result(event.type, obj, succeeded))


def _newest_known(event: WebhookEvent) -> datetime | None:
    """The provider time of the newest event already processed for the same attempt."""
    return (
        WebhookEvent.objects.filter(attempt_id=event.attempt_id, processed_at__isnull=False)
        .exclude(pk=event.pk)
        .aggregate(newest=Max("created"))["newest"]
    )


def _ref(value: Any) -> str:
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    return value[:100] if isinstance(value, str) else ""


def _charge_result(kind: str, obj: dict, succeeded: bool) -> ChargeResult:
    """A ChargeResult from a PaymentIntent or a Charge. The decline code is the most
    specific one the provider gives (insufficient_funds over card_declined)."""
    if kind.startswith("payment_intent."):
        ref = _ref(obj.get("latest_charge")) or _ref(obj.get("id"))
        error = obj.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        specific, code, message = error.get("decline_code"), error.get("code"), error.get("message")
    else:
        ref = _ref(obj.get("id"))
        outcome = obj.get("outcome")
        specific = outcome.get("reason") if isinstance(outcome, dict) else None
        code, message = obj.get("failure_code"), obj.get("failure_message")
    if succeeded:
        return ChargeResult(succeeded=True, provider_ref=ref)
    if not isinstance(specific, str) or specific == "generic_decline":
        specific = None
    failure = (specific or (code if isinstance(code, str) else "") or "card_declined")[:60]
    if not isinstance(message, str) or not message:
        message = failure_message(failure)
    return ChargeResult(
        succeeded=False, provider_ref=ref, failure_code=failure, failure_message=message[:300]
    )
