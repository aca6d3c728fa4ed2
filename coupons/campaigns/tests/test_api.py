"""The flash-sale endpoints through HTTP: create, status, claim (identity, retries,
idempotency, rejections), and the claim token at validate / apply."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core import idempotency
from core.models import IdempotencyRecord
from coupons.campaigns import services
from coupons.campaigns.api import serializers as s
from coupons.campaigns.models import Campaign, Claim
from coupons.campaigns.tests.support import claim, make_campaign
from coupons.models import Code, Coupon
from tests.race import api_key, client_for, race, unexpected
from tests.support import cart

pytestmark = pytest.mark.django_db
CART = cart(("SKU-1", "electronics", "50.00", 2), subtotal="100.00")
_orders = iter(range(10**9))


def status_of(client, campaign) -> dict:
    response = client.get(f"/api/v1/campaigns/{campaign.pk}")
    assert response.status_code == 200
    return response.json()


# --- admin create -----------------------------------------------------------------------


def test_admin_creates_a_campaign_whose_coupon_has_no_public_code(admin_api):
    # when
    response = admin_api.post(
        "/api/v1/admin/campaigns",
        {
            "name": "Midnight sale",
            "inventory": 100,
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-01T01:00:00Z",
            "claim_hold_minutes": 10,
            "discount": {
                "type": "percentage",
                "value": 25,
                "discount_cap": "50.00",
                "conditions": {"min_cart_value": "20.00"},
            },
        },
        format="json",
    )
    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["remaining"] == 100
    campaign = Campaign.objects.get(pk=body["id"])
    coupon = campaign.coupon
    assert (coupon.percent_bp, coupon.cap_minor, coupon.min_cart_minor) == (2500, 5000, 2000)
    assert not Code.objects.filter(coupon=coupon).exists()  # nobody can type the coupon


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inventory": 0}, "inventory"),
        ({"ends_at": "2029-12-31T00:00:00Z"}, "ends_at"),
        ({"claim_hold_minutes": 0}, "claim_hold_minutes"),
        ({"claim_hold_minutes": 1441}, "claim_hold_minutes"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"discount": {"type": "percentage", "value": 150}}, "discount"),
        ({"discount": {"type": "bogus"}}, "discount"),
        ({"discount": {"type": "fixed", "value": "0.001"}}, "discount"),
        ({"discount": {"type": "fixed"}}, "discount"),
        ({"name": ""}, "name"),
        # values the columns cannot hold are 400s too, never 500s (issue 11)
        ({"inventory": 2**31}, "inventory"),
        ({"inventory": 2**63}, "inventory"),
        ({"claim_hold_minutes": 2**31}, "claim_hold_minutes"),
        ({"ends_at": "9999-12-31T23:59:59-10:00"}, "ends_at"),  # year 10000 in UTC
        ({"starts_at": "0001-01-01T00:00:00+14:00"}, "starts_at"),  # before year 1 in UTC
        ({"discount": {"type": "bogo", "bogo": {"buy": 413}}}, "discount"),
        ({"discount": {"type": "bogo", "bogo": {"buy": 32768, "get": 1}}}, "discount"),
        ({"discount": {"type": "percentage", "value": 10, "priority": 2**31}}, "discount"),
        (
            {
                "discount": {
                    "type": "percentage",
                    "value": 10,
                    "conditions": {"max_uses_total": 2**31},
                }
            },
            "discount",
        ),
        (
            {
                "discount": {
                    "type": "percentage",
                    "value": 10,
                    "conditions": {"valid_to": "9999-12-31T23:59:59-10:00"},
                }
            },
            "discount",
        ),
        ({"discount": {"type": "fixed", "value": 2**63}}, "discount"),
    ],
)
def test_admin_create_bad_input_is_400_with_the_field(admin_api, body, field):
    base = {
        "name": "X",
        "inventory": 5,
        "starts_at": "2030-01-01T00:00:00Z",
        "ends_at": "2030-01-02T00:00:00Z",
        "discount": {"type": "percentage", "value": 10},
    }
    response = admin_api.post("/api/v1/admin/campaigns", {**base, **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Coupon.objects.exists()


def test_admin_create_with_any_offset(admin_api):
    # PostgreSQL refuses offsets past 15:59: the same instant in UTC is stored
    response = admin_api.post(
        "/api/v1/admin/campaigns",
        {
            "name": "X",
            "inventory": 5,
            "starts_at": "2030-01-01T00:00:00-17:01",
            "ends_at": "2030-01-03T00:00:00+23:59",
            "discount": {"type": "percentage", "value": 10},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    campaign = Campaign.objects.get(pk=response.json()["id"])
    assert campaign.starts_at.isoformat() == "2030-01-01T17:01:00+00:00"
    assert campaign.ends_at.isoformat() == "2030-01-02T00:01:00+00:00"


def test_admin_list_shows_live_counts(admin_api, storefront):
    campaign = make_campaign(inventory=4)
    claim(storefront, campaign, user_id="u-1")
    body = admin_api.get("/api/v1/admin/campaigns").json()
    assert [(c["id"], c["claimed"], c["remaining"]) for c in body["results"]] == [
        (str(campaign.pk), 1, 3)
    ]
    assert storefront.get("/api/v1/admin/campaigns").status_code == 403


def test_admin_create_needs_the_admin_scope(storefront):
    response = storefront.post("/api/v1/admin/campaigns", {}, format="json")
    assert response.status_code == 403


# --- the Idempotency-Key is stored with the campaign (issue 11) ----------------------------

CAMPAIGNS = "/api/v1/admin/campaigns"
CREATE = {
    "name": "Once",
    "inventory": 5,
    "starts_at": "2030-01-01T00:00:00Z",
    "ends_at": "2030-01-02T00:00:00Z",
    "discount": {"type": "percentage", "value": 10},
}


def create(client, key, body=None):
    return client.post(CAMPAIGNS, body or CREATE, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _crash(record, response):
    raise RuntimeError("crashed before the response was stored")


def test_a_check_constraint_the_validation_missed_is_a_400(admin_api, monkeypatch):
    # given the campaign's own window check switched off: only the database's remains
    monkeypatch.setattr(services, "_check_window", lambda **kw: None)
    monkeypatch.setattr(Campaign, "full_clean", lambda self, **kw: None)
    body = {**CREATE, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}
    monkeypatch.setattr(s.CampaignCreateIn, "validate", lambda self, attrs: attrs)
    response = admin_api.post(CAMPAIGNS, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {"ends_at": ["This value is not allowed here."]}
    assert not Campaign.objects.exists()
    assert not Coupon.objects.exists()


def test_retry_after_the_stored_response_was_lost_returns_the_campaign(admin_api):
    # given a campaign whose stored idempotent response was lost (a crash after the commit)
    first = create(admin_api, "lost-1")
    IdempotencyRecord.objects.all().delete()
    # when the client retries with the same key
    retry = create(admin_api, "lost-1")
    # then the same campaign with the same status and body, and one coupon
    assert first.status_code == retry.status_code == 201, retry.content
    assert retry.json() == first.json()
    assert Campaign.objects.count() == 1
    assert Coupon.objects.count() == 1


def test_retry_after_finish_failed_returns_the_campaign(admin_api, monkeypatch, settings):
    settings.IDEMPOTENCY_STALE_SECONDS = 0  # the dead attempt's record is taken over at once
    with monkeypatch.context() as patched:
        patched.setattr(idempotency, "_finish", _crash)
        with pytest.raises(RuntimeError):
            create(admin_api, "crash-1")
    assert Campaign.objects.count() == 1
    retry = create(admin_api, "crash-1")
    assert retry.status_code == 201, retry.content
    assert retry.json()["id"] == str(Campaign.objects.get().pk)
    assert Campaign.objects.count() == 1
    assert Coupon.objects.count() == 1
    assert create(admin_api, "crash-1").headers["Idempotent-Replayed"] == "true"


def test_lost_response_and_another_body_is_409(admin_api):
    create(admin_api, "lost-2")
    IdempotencyRecord.objects.all().delete()
    other = create(admin_api, "lost-2", {**CREATE, "inventory": 6})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Campaign.objects.count() == 1


def test_without_a_key_every_call_creates(admin_api):
    first = admin_api.post(CAMPAIGNS, CREATE, format="json")
    second = admin_api.post(CAMPAIGNS, CREATE, format="json")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


@pytest.mark.django_db(transaction=True)
def test_parallel_retries_over_http_make_one_campaign():
    key = api_key(["admin"])

    def call(_):
        response = client_for(key).post(
            CAMPAIGNS, CREATE, format="json", HTTP_IDEMPOTENCY_KEY="parallel-1"
        )
        return response.status_code, response.json()

    outcomes = race(call, range(30))
    assert not unexpected(outcomes), unexpected(outcomes)
    assert Campaign.objects.count() == 1
    assert Coupon.objects.count() == 1
    campaign_id = str(Campaign.objects.get().pk)
    for status, body in (o.value for o in outcomes):
        assert (status == 201 and body["id"] == campaign_id) or (
            status == 409 and body["error"]["code"] == "idempotency_in_progress"
        ), body


@pytest.mark.django_db(transaction=True)
def test_parallel_creates_with_one_key_make_one_campaign():
    # given no idempotency record at all (lost): only the campaign's own key decides
    start = timezone.now() + timedelta(days=1)

    def make(_):
        return services.campaign_create(
            name="Flash",
            inventory=5,
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            discount={"type": "percentage", "percent_bp": 1000, "currency": "USD"},
            idempotency_key="parallel-2",
            idempotency_principal="api_key:x",
            request_fingerprint="f" * 64,
        ).pk

    outcomes = race(make, range(30))
    assert not unexpected(outcomes), unexpected(outcomes)
    assert Campaign.objects.count() == 1
    assert {o.value for o in outcomes} == {Campaign.objects.get().pk}
    assert Coupon.objects.count() == 1  # the losers' coupons rolled back with them


# --- claim --------------------------------------------------------------------------------


def test_claim_201_then_the_same_claim_200_without_a_second_unit(storefront):
    # given
    campaign = make_campaign(inventory=3)
    # when
    first = claim(storefront, campaign, customer={"id": "u-1"})
    again = claim(storefront, campaign, user_id="u-1")  # a retry with a fresh key
    # then
    assert first.status_code == 201, first.content
    assert again.status_code == 200
    assert first.json() == again.json()
    body = first.json()
    assert body["status"] == "claimed"
    assert body["token"].startswith("FS")
    assert len(body["token"]) == 28
    campaign.refresh_from_db()
    assert campaign.claimed == 1
    assert Claim.objects.count() == 1
    assert status_of(storefront, campaign)["remaining"] == 2


def test_idempotent_replay_returns_the_first_response(storefront):
    campaign = make_campaign()
    first = claim(storefront, campaign, key="same", user_id="u-1")
    replay = claim(storefront, campaign, key="same", user_id="u-1")
    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    other_body = claim(storefront, campaign, key="same", user_id="u-2")
    assert other_body.status_code == 409


def test_claim_needs_an_idempotency_key_and_a_customer(storefront):
    campaign = make_campaign()
    assert claim(storefront, campaign, key=None, user_id="u-1").status_code == 400
    missing = claim(storefront, campaign)
    assert missing.status_code == 400
    assert "customer" in missing.json()["error"]["fields"]
    assert claim(storefront, campaign, customer="u-1").status_code == 400
    assert claim(storefront, campaign, user_id="x" * 101).status_code == 400


def test_unknown_campaign_is_404(storefront):
    response = claim(storefront, "00000000-0000-0000-0000-000000000000", user_id="u-1")
    assert response.status_code == 404
    assert (
        storefront.get("/api/v1/campaigns/00000000-0000-0000-0000-000000000000").status_code == 404
    )
    assert storefront.get("/api/v1/campaigns/not-a-uuid").status_code == 404


def test_sold_out_is_409_but_a_holder_still_gets_their_claim(storefront):
    campaign = make_campaign(inventory=1)
    won = claim(storefront, campaign, user_id="u-1")
    lost = claim(storefront, campaign, user_id="u-2")
    assert won.status_code == 201
    assert lost.status_code == 409
    assert lost.json() == {"claimed": False, "reason": "sold_out", "message": "Sold out"}
    retry = claim(storefront, campaign, user_id="u-1")
    assert retry.status_code == 200
    assert retry.json()["claim_id"] == won.json()["claim_id"]
    assert status_of(storefront, campaign)["status"] == "sold_out"


@pytest.mark.parametrize(
    ("starts_in", "lasts"),
    [
        (timedelta(hours=1), timedelta(hours=1)),  # scheduled
        (timedelta(hours=-2), timedelta(hours=1)),  # ended
    ],
)
def test_claim_outside_the_window_is_422(storefront, starts_in, lasts):
    campaign = make_campaign(starts_in=starts_in, lasts=lasts)
    response = claim(storefront, campaign, user_id="u-1")
    assert response.status_code == 422
    assert response.json()["reason"] == "campaign_not_live"
    assert response.json()["claimed"] is False
    assert not Claim.objects.exists()
    assert not Code.objects.exists()


def test_stopped_campaign_is_ended_and_refuses_claims(storefront):
    campaign = make_campaign()
    services.campaigns_stop(campaign_ids=[campaign.pk])
    assert claim(storefront, campaign, user_id="u-1").status_code == 422
    assert status_of(storefront, campaign)["status"] == "ended"


def test_status_across_the_lifecycle(storefront):
    scheduled = make_campaign(starts_in=timedelta(minutes=10))
    live = make_campaign(inventory=2)
    ended = make_campaign(starts_in=timedelta(hours=-3), lasts=timedelta(hours=1))
    assert status_of(storefront, scheduled)["status"] == "scheduled"
    body = status_of(storefront, live)
    assert body["status"] == "live"
    assert body["remaining"] == 2
    assert body["inventory"] == 2
    assert set(body) == {"id", "name", "status", "remaining", "inventory", "starts_at", "ends_at"}
    assert status_of(storefront, ended)["status"] == "ended"
    claim(storefront, live, user_id="u-1")
    claim(storefront, live, user_id="u-2")
    assert status_of(storefront, live) | {} == {**body, "status": "sold_out", "remaining": 0}


# --- identity -----------------------------------------------------------------------------


def test_jwt_subject_is_the_customer_and_the_body_cannot_change_it(customer_client):
    campaign = make_campaign()
    alice = customer_client("alice")
    mine = claim(alice, campaign)
    assert mine.status_code == 201
    assert Claim.objects.get().customer.external_id == "alice"
    assert claim(alice, campaign, customer={"id": "bob"}).status_code == 403
    assert claim(alice, campaign, user_id="bob").status_code == 403
    same = claim(alice, campaign, user_id="alice")
    assert same.status_code == 200
    assert same.json()["token"] == mine.json()["token"]
    assert Claim.objects.count() == 1


def test_api_key_names_the_customer_in_the_body(storefront):
    campaign = make_campaign()
    assert claim(storefront, campaign, customer={"id": "c-1"}).status_code == 201
    assert claim(storefront, campaign, customer={"id": "c-2"}).status_code == 201
    assert sorted(Claim.objects.values_list("customer__external_id", flat=True)) == ["c-1", "c-2"]


def test_claim_needs_credentials(client):
    campaign = make_campaign()
    response = client.post(
        f"/api/v1/campaigns/{campaign.pk}/claim",
        {"user_id": "u"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 401


# --- the token at checkout ----------------------------------------------------------------


def validate(client, code, customer):
    return client.post(
        "/api/v1/coupons/validate",
        {"coupon_code": code, "user_id": customer, "cart": CART},
        format="json",
    )


def apply(client, code, customer, order=None):
    return client.post(
        "/api/v1/coupons/apply",
        {
            "coupon_code": code,
            "user_id": customer,
            "cart": CART,
            "order_id": order or f"o-{next(_orders)}",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"a-{next(_orders)}",
    )


def test_token_is_valid_for_its_owner_only_and_single_use(storefront):
    campaign = make_campaign(percent_bp=2000)
    token = claim(storefront, campaign, user_id="u-1").json()["token"]
    # the owner: valid, 20% of 100.00
    owner = validate(storefront, token, "u-1").json()
    assert owner["valid"] is True
    assert owner["discount"] == "20.00"
    # someone else, even with the token
    other = validate(storefront, token, "u-2").json()
    assert other == {**other, "valid": False, "reason": "code_bound_to_other_customer"}
    assert apply(storefront, token, "u-2").json()["reason"] == "code_bound_to_other_customer"
    # typed by hand in lower case with hyphens it is still found (canonical form)
    spaced = "-".join(token[i : i + 4] for i in range(0, len(token), 4)).lower()
    assert validate(storefront, spaced, "u-1").json()["valid"] is True
    # first use wins, a second order cannot use it again
    first = apply(storefront, token, "u-1", order="o-first")
    assert first.status_code == 200, first.json()
    second = apply(storefront, token, "u-1")
    assert second.status_code == 422
    assert second.json()["reason"] == "usage_limit_reached"
    # the claim reads as redeemed while the token holds a use
    again = claim(storefront, campaign, user_id="u-1")
    assert again.status_code == 200
    assert again.json()["status"] == "redeemed"
    # released order: usable again until the claim expires
    assert storefront.post("/api/v1/orders/o-first/release").status_code == 200
    assert claim(storefront, campaign, user_id="u-1").json()["status"] == "claimed"
    assert apply(storefront, token, "u-1").status_code == 200


def test_expiry_returns_the_unit_and_invalidates_the_token(
    storefront, django_capture_on_commit_callbacks
):
    # given a claim past its hold
    campaign = make_campaign(inventory=1, hold_minutes=1)
    body = claim(storefront, campaign, user_id="u-1").json()
    assert validate(storefront, body["token"], "u-1").json()["valid"] is True
    assert claim(storefront, campaign, user_id="u-2").status_code == 409
    # when the beat job runs after the hold
    later = timezone.now() + timedelta(minutes=2)
    with django_capture_on_commit_callbacks(execute=True):  # drops the cached code terms
        assert services.claims_expire_stale(now=later) == 1
    assert services.claims_expire_stale(now=later) == 0  # re-running gives nothing twice
    # then the unit is back, the token is dead, the holder sees "expired"
    campaign.refresh_from_db()
    assert campaign.claimed == 0
    assert status_of(storefront, campaign)["remaining"] == 1
    token_check = validate(storefront, body["token"], "u-1").json()
    assert token_check["valid"] is False
    assert token_check["reason"] == "coupon_inactive"
    again = claim(storefront, campaign, user_id="u-1")
    assert again.status_code == 200
    assert again.json()["status"] == "expired"
    assert again.json()["claim_id"] == body["claim_id"]
    assert claim(storefront, campaign, user_id="u-2").status_code == 201  # the unit resold


def test_expiry_keeps_redeemed_claims_and_waits_for_reserved_ones(storefront):
    campaign = make_campaign(inventory=3, hold_minutes=1)
    tokens = {
        u: claim(storefront, campaign, user_id=u).json()["token"]
        for u in ("paid", "pending", "idle")
    }
    assert apply(storefront, tokens["paid"], "paid", order="o-paid").status_code == 200
    assert storefront.post("/api/v1/orders/o-paid/confirm").status_code == 200
    assert apply(storefront, tokens["pending"], "pending", order="o-pend").status_code == 200
    later = timezone.now() + timedelta(minutes=2)
    assert services.claims_expire_stale(now=later) == 1  # only "idle"
    states = dict(Claim.objects.values_list("customer__external_id", "status"))
    assert states == {"paid": "redeemed", "pending": "claimed", "idle": "expired"}
    campaign.refresh_from_db()
    assert campaign.claimed == 2
    # the pending order is released: the next run gives that unit back
    assert storefront.post("/api/v1/orders/o-pend/release").status_code == 200
    assert services.claims_expire_stale(now=later) == 1
    campaign.refresh_from_db()
    assert campaign.claimed == 1


def test_customer_jwt_reads_status_and_overlong_subject_is_400(customer_client):
    campaign = make_campaign(inventory=2)
    assert customer_client("u-1").get(f"/api/v1/campaigns/{campaign.pk}").status_code == 200
    response = claim(customer_client("x" * 101), campaign)
    assert response.status_code == 400
    assert "customer" in response.json()["error"]["fields"]


def test_beat_schedule_and_task_body():
    from django_celery_beat.models import PeriodicTask

    from coupons.campaigns import tasks

    task = PeriodicTask.objects.get(name="campaigns: expire stale claims")
    assert task.task == "campaigns.tasks.claims_expire_stale"
    assert task.interval.every == 60
    assert tasks.claims_expire_stale.apply().get() == 0
