"""The payment gateway interface, and the built-in test gateway.

Billing calls a gateway only outside any transaction and row lock, with the payment
attempt's id as the idempotency key: the same key always gets the first answer, so a
retry after a crash can never charge twice (billing.payments.services).

The test gateway (the default outside production) is deterministic by payment-method
token (API.md): `pm_card_visa` and `pm_card_mastercard` succeed, the `pm_card_chargeDeclined*`
and `pm_card_chargeCustomerFail` tokens are declined; anything else is declined as an
unknown card. `BILLING_TEST_GATEWAY_LATENCY_MS` adds latency, and
`BILLING_TEST_GATEWAY_FAILURE` injects faults for tests: `error` (the call fails before
charging), `error_after_charge` (charges, then the answer is lost), `hang` (sleeps
`BILLING_TEST_GATEWAY_HANG_SECONDS`, then fails like a timeout). It keeps its answers in
its own table (it plays the provider), written in autocommit, outside billing's work.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import connection

from billing.models import TestGatewayCharge

SUCCEEDING = frozenset({"pm_card_visa", "pm_card_mastercard"})
DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeCustomerFail": "card_declined",
}
KNOWN_TOKENS = SUCCEEDING | set(DECLINES)


class GatewayError(Exception):
    """The gateway did not answer (timeout, outage): the outcome is unknown."""


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    provider_ref: str = ""
    failure_code: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    amount_minor: int
    currency: str
    payment_method: str


class Gateway(Protocol):
    def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, payment_method: str
    ) -> ChargeResult: ...

    def charge_many(self, requests: list[ChargeRequest]) -> dict[str, ChargeResult]:
        """Many charges at once (the renewal job's batch), each with its own idempotency
        key and the same meaning as charge(); answers by key. A key missing from the
        answer, or a GatewayError, means its outcome is unknown (reconciled later). A
        provider without a batch call makes the calls concurrently (a real provider's
        latency, not our CPU, is then the cost); the test gateway answers in one
        statement."""
        ...

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        """The answer to an earlier call with this key, None if it never reached us."""
        ...

    def refund(self, *, idempotency_key: str, amount_minor: int, currency: str) -> str: ...


_faults = threading.local()


def set_fault(mode: str | None) -> None:
    """Override BILLING_TEST_GATEWAY_FAILURE for this thread (tests)."""
    _faults.mode = mode


def _fault() -> str:
    return getattr(_faults, "mode", None) or settings.BILLING_TEST_GATEWAY_FAILURE


_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "no_payment_method": "No payment method on file.",
}


def failure_message(code: str) -> str:
    return _MESSAGES.get(code, "The payment failed.")


class TestGateway:
    __test__ = False

    def charge(
        self, *, idempotency_key: str, amount_minor: int, currency: str, payment_method: str
    ) -> ChargeResult:
        latency = settings.BILLING_TEST_GATEWAY_LATENCY_MS
        if latency:
            time.sleep(latency / 1000)
        fault = _fault()
        if fault == "error":
            raise GatewayError("test gateway: injected error")
        if fault == "hang":
            time.sleep(settings.BILLING_TEST_GATEWAY_HANG_SECONDS)
            raise GatewayError("test gateway: injected hang")
        code = _decline_code(payment_method)
        # One statement: a new key is charged; a known key (a retry, or the same key at
        # the same time) gets the first answer.
        with connection.cursor() as cursor:
            cursor.execute(
                _CHARGE_SQL,
                [idempotency_key, amount_minor, currency, payment_method, not code, code],
            )
            row = cursor.fetchone()
        if row is None:
            result = self.lookup(idempotency_key=idempotency_key)
            if result is None:  # never: the row that collided is committed
                raise GatewayError("test gateway: lost a charge record")
            return result
        if fault == "error_after_charge":
            raise GatewayError("test gateway: injected lost answer")
        return _result_of(row[0], not code, code)

    def charge_many(self, requests: list[ChargeRequest]) -> dict[str, ChargeResult]:
        if not requests:
            return {}
        latency = settings.BILLING_TEST_GATEWAY_LATENCY_MS
        if latency:  # the calls of a batch are concurrent: one latency for all
            time.sleep(latency / 1000)
        fault = _fault()
        if fault == "error":
            raise GatewayError("test gateway: injected error")
        if fault == "hang":
            time.sleep(settings.BILLING_TEST_GATEWAY_HANG_SECONDS)
            raise GatewayError("test gateway: injected hang")
        codes = [_decline_code(r.payment_method) for r in requests]
        with connection.cursor() as cursor:
            cursor.execute(
                _CHARGE_MANY_SQL,
                [
                    [r.idempotency_key for r in requests],
                    [r.amount_minor for r in requests],
                    [r.currency for r in requests],
                    [r.payment_method for r in requests],
                    [not code for code in codes],
                    codes,
                ],
            )
            created = {key: _result_of(pk, not code, code) for key, pk, code in cursor.fetchall()}
        known = [r.idempotency_key for r in requests if r.idempotency_key not in created]
        if known:  # retries (or the same key at the same time): the first answer
            for row in TestGatewayCharge.objects.filter(idempotency_key__in=known):
                created[row.idempotency_key] = _result(row)
        if fault == "error_after_charge":
            raise GatewayError("test gateway: injected lost answer")
        return created

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        row = TestGatewayCharge.objects.filter(idempotency_key=idempotency_key).first()
        return None if row is None else _result(row)

    def refund(self, *, idempotency_key: str, amount_minor: int, currency: str) -> str:
        row, _ = TestGatewayCharge.objects.get_or_create(
            idempotency_key=idempotency_key,
            defaults={
                "kind": "refund",
                "amount_minor": amount_minor,
                "currency": currency,
                "succeeded": True,
            },
        )
        return f"re_test_{row.pk}"


_CHARGE_SQL = """
INSERT INTO billing_testgatewaycharge
    (idempotency_key, kind, amount_minor, currency, payment_method, succeeded, failure_code,
     created_at)
VALUES (%s, 'charge', %s, %s, %s, %s, %s, now())
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""


_CHARGE_MANY_SQL = """
INSERT INTO billing_testgatewaycharge
    (idempotency_key, kind, amount_minor, currency, payment_method, succeeded, failure_code,
     created_at)
SELECT k, 'charge', a, c, m, s, f, now()
  FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::bool[], %s::text[])
       AS v(k, a, c, m, s, f)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key, id, failure_code
"""


def _decline_code(payment_method: str) -> str:
    """ "" for a card that succeeds, else the decline code its token stands for."""
    return "" if payment_method in SUCCEEDING else DECLINES.get(payment_method, "card_declined")


def _result_of(pk: int, succeeded: bool, code: str) -> ChargeResult:
    if succeeded:
        return ChargeResult(succeeded=True, provider_ref=f"ch_test_{pk}")
    return ChargeResult(
        succeeded=False,
        provider_ref=f"ch_test_{pk}",
        failure_code=code,
        failure_message=failure_message(code),
    )


def _result(row: TestGatewayCharge) -> ChargeResult:
    return _result_of(row.pk, row.succeeded, row.failure_code)


def get_gateway() -> Gateway:
    name = settings.BILLING_GATEWAY
    if name == "test":
        return TestGateway()
    raise RuntimeError(f"unknown BILLING_GATEWAY {name!r}")
