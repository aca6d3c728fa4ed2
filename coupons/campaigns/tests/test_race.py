"""Races against real PostgreSQL (tests/race.py: worker threads with their own
connections, at most 40): inventory is never oversold, one customer never holds two
claims, and expiry gives each unit back exactly once."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from coupons.campaigns import services
from coupons.campaigns.models import Campaign, Claim, ClaimStatus
from coupons.campaigns.tests.support import claim_url, make_campaign
from coupons.models import Code, Customer
from tests.race import api_key, client_for, race, unexpected

pytestmark = pytest.mark.django_db(transaction=True)


def attempt(campaign_id, customer: str) -> str:
    try:
        view = services.campaign_claim(campaign_id=campaign_id, customer_id=customer)
    except services.ClaimRejectedError as exc:
        return exc.reason
    return "created" if view.created else "existing"


def test_3000_customers_race_for_1000_units(monkeypatch):
    # given 1,000 units, and the read-only sold-out shortcut disabled so that every one of
    # the 3,000 calls reaches the insert and the conditional update
    campaign = make_campaign(inventory=1000)
    real = services.campaign_status
    monkeypatch.setattr(
        services,
        "campaign_status",  # the pre-check passes `now`
        lambda **kw: "live" if kw.get("now") is not None else real(**kw),
    )
    # when
    outcomes = race(lambda i: attempt(campaign.pk, f"c-{i}"), range(3000))
    # then
    assert not unexpected(outcomes), unexpected(outcomes)
    counts = Counter(o.value for o in outcomes)
    assert counts == {"created": 1000, "sold_out": 2000}
    campaign.refresh_from_db()
    assert campaign.claimed == 1000 == Claim.objects.filter(campaign=campaign).count()
    assert Code.objects.filter(coupon=campaign.coupon).count() == 1000  # losers left no token
    assert Claim.objects.values("customer").distinct().count() == 1000


def test_200_concurrent_claims_by_one_customer_over_http():
    # given
    campaign = make_campaign(inventory=10)
    key = api_key(["storefront"])

    def call(i):
        response = client_for(key).post(
            claim_url(campaign),
            {"user_id": "same-shopper"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"tab-{i}",
        )
        return response.status_code, response.json()

    # when
    outcomes = race(call, range(200))
    # then
    assert not unexpected(outcomes), unexpected(outcomes)
    statuses = Counter(o.value[0] for o in outcomes)
    assert statuses == {201: 1, 200: 199}
    assert len({(o.value[1]["claim_id"], o.value[1]["token"]) for o in outcomes}) == 1
    campaign.refresh_from_db()
    assert campaign.claimed == 1 == Claim.objects.count() == Code.objects.count()


def _expired_claims(campaign: Campaign, n: int) -> None:
    for i in range(n):
        services.campaign_claim(campaign_id=campaign.pk, customer_id=f"e-{i}")
    Claim.objects.update(expires_at=timezone.now() - timedelta(seconds=1))


def test_concurrent_expiry_runs_return_each_unit_once():
    # given 300 claims past their hold
    campaign = make_campaign(inventory=300)
    _expired_claims(campaign, 300)
    # when 16 expiry runs race (small batches, so they interleave)
    outcomes = race(lambda _: services.claims_expire_stale(batch_size=7), range(16), workers=16)
    # then
    assert not unexpected(outcomes), unexpected(outcomes)
    assert sum(o.value for o in outcomes) == 300
    campaign.refresh_from_db()
    assert campaign.claimed == 0
    assert set(Claim.objects.values_list("status", flat=True)) == {ClaimStatus.EXPIRED}
    assert not Code.objects.filter(active=True).exists()


def test_expiry_racing_new_claims_keeps_the_counter_exact():
    # given 100 expired claims on a sold-out campaign
    campaign = make_campaign(inventory=100)
    _expired_claims(campaign, 100)
    # when expiry runs race 300 new customers for the units it gives back
    calls = [("expire", i) for i in range(10)] + [("claim", i) for i in range(300)]
    calls.sort(key=lambda c: uuid.uuid4())

    def run(call):
        kind, i = call
        if kind == "expire":
            return services.claims_expire_stale(batch_size=5)
        return attempt(campaign.pk, f"n-{i}")

    outcomes = race(run, calls)
    # then the counter equals the claims holding a unit, within the inventory
    assert not unexpected(outcomes), unexpected(outcomes)
    campaign.refresh_from_db()
    holding = Claim.objects.exclude(status=ClaimStatus.EXPIRED).count()
    assert campaign.claimed == holding <= 100
    created = sum(1 for o in outcomes if o.value == "created")
    old = Claim.objects.filter(customer__external_id__startswith="e-")
    assert holding == created + old.exclude(status=ClaimStatus.EXPIRED).count()


_NAIVE_SQL = """
WITH unit AS (UPDATE campaigns_campaign SET claimed = claimed + 1
               WHERE id = %(campaign)s AND claimed < inventory RETURNING id)
INSERT INTO campaigns_claim (id, campaign_id, customer_id, code_id, status, expires_at,
                             created_at)
SELECT %(id)s, unit.id, %(customer)s, %(code)s, 'claimed', now(), now() FROM unit
ON CONFLICT (campaign_id, customer_id) DO NOTHING
"""


def test_the_trap_counter_first_counts_retries_as_sales():
    """Why the insert must decide: counting first and inserting with ON CONFLICT DO
    NOTHING in one statement sells a unit to every retry (the statement "succeeds")."""
    campaign = make_campaign(inventory=10)
    customer = Customer.objects.create(external_id="retrier")
    code = Code.objects.create(coupon=campaign.coupon, code="TRAP", customer=customer)
    with connection.cursor() as cursor:
        for _ in range(5):  # one customer, five retries
            cursor.execute(
                _NAIVE_SQL,
                {
                    "campaign": campaign.pk,
                    "id": uuid.uuid4(),
                    "customer": customer.pk,
                    "code": code.pk,
                },
            )
    campaign.refresh_from_db()
    assert Claim.objects.count() == 1
    assert campaign.claimed == 5  # four phantom sales
