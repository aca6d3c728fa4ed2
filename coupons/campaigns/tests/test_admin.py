"""The Django admin for flash sales: the list with live counts, create with a simple
discount (no public code), the stop action and button, read-only claims, and the
marketing group's rights."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from coupons.campaigns import services
from coupons.campaigns.models import Campaign, Claim
from coupons.campaigns.tests.support import make_campaign
from coupons.models import Code

pytestmark = pytest.mark.django_db
LIST = reverse("admin:campaigns_campaign_changelist")
ADD = reverse("admin:campaigns_campaign_add")


def _form(**overrides) -> dict:
    start = timezone.localtime(timezone.now() + timedelta(hours=1))
    end = start + timedelta(hours=2)
    data = {
        "name": "Admin flash",
        "inventory": "50",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": end.strftime("%Y-%m-%d"),
        "ends_at_1": end.strftime("%H:%M:%S"),
        "claim_hold_minutes": "15",
        "discount_type": "percentage",
        "discount_value": "30",
        "discount_cap": "20.00",
        "currency": "USD",
    }
    return {**data, **overrides}


def test_list_shows_status_and_live_counts(marketing_client):
    campaign = make_campaign(inventory=5)
    for i in range(2):
        services.campaign_claim(campaign_id=campaign.pk, customer_id=f"u-{i}")
    page = marketing_client.get(LIST)
    assert page.status_code == 200
    row = page.context["cl"].result_list[0]
    assert (row.claimed, row.remaining, row.status) == (2, 3, "live")
    assert b"Live" in page.content
    change = marketing_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert change.status_code == 200
    assert b"Stop now" in change.content
    claims = marketing_client.get(
        reverse("admin:campaigns_claim_changelist"),
        {"campaign__id__exact": campaign.pk, "status": "claimed"},
    )
    assert claims.status_code == 200
    assert len(claims.context["cl"].result_list) == 2


def test_marketing_creates_a_campaign_with_a_simple_discount(marketing_client):
    response = marketing_client.post(ADD, _form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert campaign.inventory == 50
    assert campaign.status == "scheduled"
    assert (campaign.coupon.percent_bp, campaign.coupon.cap_minor) == (3000, 2000)
    assert not Code.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"discount_value": ""}, "discount_value"),
        ({"discount_value": "150"}, "discount_value"),
        ({"inventory": "0"}, "inventory"),
        ({"claim_hold_minutes": "0"}, "claim_hold_minutes"),
    ],
)
def test_create_form_refuses_bad_input(marketing_client, overrides, field):
    response = marketing_client.post(ADD, _form(**overrides))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Campaign.objects.exists()


def test_create_refuses_an_end_before_the_start(marketing_client):
    form = _form()
    form["ends_at_0"], form["ends_at_1"] = form["starts_at_0"], form["starts_at_1"]
    response = marketing_client.post(ADD, form, follow=True)
    assert not Campaign.objects.exists()
    assert (
        b"ends_at must be after starts_at" in response.content
        or response.context["adminform"].form.errors
    )


def test_stop_action_and_button_end_the_campaign(marketing_client):
    a, b = make_campaign(), make_campaign()
    response = marketing_client.post(LIST, {"action": "stop_now", "_selected_action": [a.pk]})
    assert response.status_code == 302
    a.refresh_from_db()
    assert a.stopped_at is not None
    assert a.status == "ended"
    url = reverse("admin:campaigns_campaign_stop", args=[b.pk])
    assert marketing_client.get(url).status_code == 403  # POST only
    assert marketing_client.post(url).status_code == 302
    b.refresh_from_db()
    assert b.status == "ended"
    with pytest.raises(services.ClaimRejectedError):
        services.campaign_claim(campaign_id=b.pk, customer_id="late")


def test_edit_cannot_take_inventory_below_claimed(marketing_client):
    campaign = make_campaign(inventory=3)
    for i in range(2):
        services.campaign_claim(campaign_id=campaign.pk, customer_id=f"u-{i}")
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    start, end = timezone.localtime(campaign.starts_at), timezone.localtime(campaign.ends_at)
    form = {
        "name": "Renamed",
        "inventory": "1",
        "claim_hold_minutes": "15",
        "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": end.strftime("%Y-%m-%d"),
        "ends_at_1": end.strftime("%H:%M:%S"),
    }
    marketing_client.post(url, form, follow=True)
    campaign.refresh_from_db()
    assert campaign.inventory == 3
    assert campaign.claimed == 2
    marketing_client.post(url, {**form, "inventory": "10"})
    campaign.refresh_from_db()
    assert (campaign.name, campaign.inventory) == ("Renamed", 10)


def test_claims_are_read_only(admin_client):
    campaign = make_campaign()
    services.campaign_claim(campaign_id=campaign.pk, customer_id="u-1")
    claim = Claim.objects.get()
    change = admin_client.get(reverse("admin:campaigns_claim_change", args=[claim.pk]))
    assert change.status_code == 200
    assert admin_client.get(reverse("admin:campaigns_claim_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:campaigns_claim_change", args=[claim.pk]), {"status": "expired"}
        ).status_code
        == 403
    )
    claim.refresh_from_db()
    assert claim.status == "claimed"
