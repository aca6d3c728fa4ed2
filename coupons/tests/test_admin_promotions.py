"""Admin for promotions: the stacking-policy singleton as marketing uses it, and the
coupon "Try it" preview (services.promotion_preview) rendered as a page."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from coupons import promotions
from coupons.models import Coupon, PromotionSettings
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

SETTINGS = reverse("admin:coupons_promotionsettings_changelist")
SETTINGS_ONE = reverse("admin:coupons_promotionsettings_change", args=[1])


def try_url(coupon: Coupon) -> str:
    return reverse("admin:coupons_coupon_try", args=[coupon.pk])


def cart_json(*items, currency="USD", shipping="5.00") -> str:
    """items: (sku, category, unit_price, quantity)."""
    return json.dumps(
        {
            "currency": currency,
            "shipping": shipping,
            "items": [
                {"sku": s, "category": c, "unit_price": p, "quantity": q} for s, c, p, q in items
            ],
        }
    )


def preview(client, coupon: Coupon, cart: str | None = None, **fields):
    data = {
        "cart": cart or cart_json(("SKU-1", "shoes", "100.00", 1)),
        "customer_id": "",
        "segments": "",
        "orders_count": "0",
        "codes": "",
    }
    data.update(fields)
    return client.post(try_url(coupon), data)


def codes(rows) -> list[str]:
    return [row["code"] for row in rows]


# --- promotion settings -------------------------------------------------------------------


def test_settings_list_opens_the_singleton_created_from_the_setting(marketing_client, settings):
    settings.STACKING_POLICY = "none"

    response = marketing_client.get(SETTINGS)

    assert response.status_code == 302
    assert response.url == SETTINGS_ONE
    assert PromotionSettings.objects.get().stacking_policy == "none"
    page = marketing_client.get(SETTINGS_ONE)
    assert page.status_code == 200
    text = page.content.decode()
    # every choice is shown with its explanation
    assert 'type="radio"' in text
    assert "one coupon or promotion per order" in text
    assert "at most one per stack group" in text


def test_marketing_changes_the_policy_and_the_engine_uses_it(marketing_client):
    PromotionSettings.objects.create(stacking_policy="by_group")
    assert promotions.policy() == "by_group"  # compiled and cached in this process

    response = marketing_client.post(SETTINGS_ONE, {"stacking_policy": "full"})

    assert response.status_code == 302
    assert PromotionSettings.objects.get().stacking_policy == "full"
    assert promotions.policy() == "full"


def test_settings_cannot_be_added_twice_or_deleted(marketing_client, admin_client):
    marketing_client.get(SETTINGS)  # creates the row

    for client in (marketing_client, admin_client):
        assert client.get(reverse("admin:coupons_promotionsettings_add")).status_code == 403
        delete = reverse("admin:coupons_promotionsettings_delete", args=[1])
        assert client.get(delete).status_code == 403
        assert client.post(delete, {"post": "yes"}).status_code == 403
    assert PromotionSettings.objects.count() == 1


def test_settings_need_a_permission(client):
    user = User.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(user)

    assert client.get(SETTINGS).status_code == 403
    assert not PromotionSettings.objects.exists()


# --- try it -------------------------------------------------------------------------------


def test_change_page_links_to_try_it_and_the_form_has_a_sample_cart(marketing_client):
    coupon = CouponFactory(
        code="SHOES20",
        currency="EUR",
        percent_bp=2000,
        auto_apply=True,
        min_cart_minor=15000,
        eligible_categories=["shoes"],
    )

    change = marketing_client.get(reverse("admin:coupons_coupon_change", args=[coupon.pk]))
    assert try_url(coupon) in change.content.decode()

    page = marketing_client.get(try_url(coupon))
    assert page.status_code == 200
    sample = page.context["form"].initial["cart"]
    # the sample cart, as it is, is priced with the coupon applied
    response = preview(marketing_client, coupon, cart=sample)
    result = response.context["result"]
    assert codes(result["applied"]) == ["SHOES20"]
    assert json.loads(sample)["currency"] == "EUR"


def test_try_it_previews_a_draft_auto_promotion(marketing_client):
    draft = CouponFactory(
        code="DRAFT20", description="Spring draft", percent_bp=2000, active=False, auto_apply=True
    )

    response = preview(marketing_client, draft)

    assert response.status_code == 200
    result = response.context["result"]
    assert [(r["code"], r["auto"], r["discount"], r["own"]) for r in result["applied"]] == [
        ("DRAFT20", True, "$20.00", True)
    ]
    assert ("Total", "$85.00") in result["totals"]
    text = response.content.decode()
    assert "is not live: it is inactive" in text
    assert 'class="own-row"' in text
    assert "Spring draft" in text


def test_try_it_previews_a_live_auto_promotion(marketing_client):
    live = CouponFactory(code="AUTO10", auto_apply=True)

    response = preview(marketing_client, live)

    result = response.context["result"]
    assert [(r["code"], r["discount"]) for r in result["applied"]] == [("AUTO10", "$10.00")]
    assert response.context["not_live"] == []
    assert "is not live" not in response.content.decode()


def test_try_it_shows_rejected_codes_and_passed_over_promotions(marketing_client):
    CouponFactory(code="BIG25", percent_bp=2500, auto_apply=True)
    CouponFactory(code="TYPED5", percent_bp=500)
    small = CouponFactory(code="SMALL10", auto_apply=True, active=False)

    response = preview(marketing_client, small, codes="typed5, nope")

    result = response.context["result"]
    assert codes(result["applied"]) == ["BIG25"]
    assert [(r["code"], r["reason"]) for r in result["rejected"]] == [
        ("TYPED5", "not_stackable"),
        ("NOPE", "coupon_not_found"),
    ]
    assert [(r["code"], r["own"]) for r in result["passed_over"]] == [("SMALL10", True)]
    assert "BIG25 saves $25.00" in result["passed_over"][0]["message"]
    assert "Coupon not found" in response.content.decode()


def test_try_it_lists_ineligible_promotions_with_the_reason(marketing_client):
    CouponFactory(code="BIGCART", auto_apply=True, min_cart_minor=50000)
    coupon = CouponFactory(code="VIPONLY", auto_apply=True, eligible_segments=["vip"])

    response = preview(marketing_client, coupon)

    result = response.context["result"]
    assert result["applied"] == []
    reasons = {r["code"]: (r["reason"], r["own"]) for r in result["ineligible"]}
    assert reasons == {"VIPONLY": ("segment_not_eligible", True)}  # BIGCART: not a candidate

    response = preview(
        marketing_client, coupon, segments="vip", cart=cart_json(("SKU-1", "shoes", "600.00", 1))
    )
    result = response.context["result"]
    # both qualify now; equal 10% deals, so the rank order (code) breaks the tie
    assert codes(result["applied"]) == ["BIGCART"]
    assert [(r["code"], r["own"]) for r in result["passed_over"]] == [("VIPONLY", True)]


@pytest.mark.parametrize(
    ("cart", "error"),
    [
        ("{not json", "Not valid JSON"),
        ("NaN", "Not valid JSON"),
        ("[]", "Expected an object with currency and items."),
        ('{"currency": "USD", "items": []}', "items: Enter a non-empty list of items."),
        (
            '{"currency": "USD", "items": [{"sku": "A", "unit_price": "1.001", "quantity": 0}]}',
            "items[0].unit_price: USD amounts have at most 2 decimal places.",
        ),
    ],
)
def test_bad_cart_is_a_form_error_not_a_500(marketing_client, cart, error):
    coupon = CouponFactory(auto_apply=True)

    response = preview(marketing_client, coupon, cart=cart)

    assert response.status_code == 200
    assert response.context["result"] is None
    assert any(error in e for e in response.context["form"].errors["cart"])
    assert error.split(":")[0] in response.content.decode()


def test_try_it_needs_view_permission(client):
    coupon = CouponFactory(auto_apply=True)
    user = User.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(user)

    assert client.get(try_url(coupon)).status_code == 403
    assert preview(client, coupon).status_code == 403

    # view permission alone is enough: the preview writes nothing
    user.user_permissions.add(Permission.objects.get(codename="view_coupon"))
    assert client.get(try_url(coupon)).status_code == 200
    assert preview(client, coupon).context["result"]["applied"]


def test_try_it_for_a_missing_coupon_redirects(marketing_client):
    response = marketing_client.get(reverse("admin:coupons_coupon_try", args=[999999]))

    assert response.status_code == 302
