"""The test gateway's batch call (the renewal job's): each request keeps its own
idempotency key, so a replayed or concurrent batch gets the first answers and charges
nothing twice; declines are per card, as for single charges."""

import uuid

import pytest

from billing.models import TestGatewayCharge
from billing.payments.gateway import ChargeRequest, TestGateway
from tests.race import race, unexpected


def _requests(*cards: str) -> list[ChargeRequest]:
    return [ChargeRequest(str(uuid.uuid4()), 2900, "USD", card) for card in cards]


@pytest.mark.django_db
def test_a_batch_answers_each_card_as_a_single_charge_would():
    requests = _requests("pm_card_visa", "pm_card_chargeDeclinedInsufficientFunds", "pm_bogus")
    answers = TestGateway().charge_many(requests)
    ok, poor, bogus = (answers[r.idempotency_key] for r in requests)
    assert ok.succeeded
    assert ok.provider_ref.startswith("ch_test_")
    assert (poor.succeeded, poor.failure_code) == (False, "insufficient_funds")
    assert (bogus.succeeded, bogus.failure_code) == (False, "card_declined")
    single = TestGateway().charge(
        idempotency_key=str(uuid.uuid4()),
        amount_minor=2900,
        currency="USD",
        payment_method="pm_card_chargeDeclinedInsufficientFunds",
    )
    assert (single.failure_code, single.failure_message) == (
        poor.failure_code,
        poor.failure_message,
    )


@pytest.mark.django_db
def test_a_replayed_batch_gets_the_first_answers_and_charges_nothing_again():
    first = _requests("pm_card_visa", "pm_card_visa")
    answers = TestGateway().charge_many(first)
    # a retry of the same keys, with one new request among them
    again = TestGateway().charge_many([*first, *_requests("pm_card_mastercard")])
    assert {k: again[k] for k in answers} == answers
    assert TestGatewayCharge.objects.count() == 3
    # and a single charge with a batch's key gets the batch's answer
    key = first[0].idempotency_key
    assert (
        TestGateway().charge(
            idempotency_key=key, amount_minor=2900, currency="USD", payment_method="pm_card_visa"
        )
        == answers[key]
    )


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_sent_from_six_connections_charges_each_key_once():
    requests = _requests(*["pm_card_visa"] * 50)
    outcomes = race(lambda _: TestGateway().charge_many(requests), range(6), workers=6)
    assert not unexpected(outcomes), unexpected(outcomes)
    assert TestGatewayCharge.objects.count() == 50
    refs = {tuple(sorted((k, r.provider_ref) for k, r in o.value.items())) for o in outcomes}
    assert len(refs) == 1  # every connection was told the same charges
