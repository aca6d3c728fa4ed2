"""Auto-apply promotions through HTTP: POST /api/v1/promotions/evaluate, the stacking
policy singleton, and validate/apply agreeing with evaluate (issue 4)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from coupons import promotions
from coupons.models import Coupon, PromotionSettings, Redemption
from coupons.tests.factories import CouponFactory, CustomerFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

EVALUATE = "/api/v1/promotions/evaluate"
VALIDATE = "/api/v1/coupons/validate"
APPLY = "/api/v1/coupons/apply"
CART_150 = cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99")
CART_100 = cart(("SKU-9", "home", "100.00", 1), shipping="5.00")


def post(client, url, **body):
    body.setdefault("cart", CART_150)
    if "customer" not in body:
        body.setdefault("user_id", "u-1")
    key = {"HTTP_IDEMPOTENCY_KEY": f"k-{body.get('order_id')}"} if url == APPLY else {}
    return client.post(url, body, format="json", **key)


def set_policy(policy: str) -> None:
    PromotionSettings(stacking_policy=policy).save()


def summer25(**kw):
    return CouponFactory(
        code="SUMMER25",
        percent_bp=2500,
        cap_minor=5000,
        stackable=True,
        stack_group="percentage",
        **kw,
    )


def freeship(**kw):
    return CouponFactory(
        code="FREESHIP",
        type="free_shipping",
        percent_bp=None,
        stackable=True,
        stack_group="shipping",
        **kw,
    )


def auto(code, **kw):
    kw.setdefault("percent_bp", None)
    return CouponFactory(code=code, auto_apply=True, **kw)


# --- evaluate: shape and explanations -----------------------------------------------------


def test_evaluate_without_codes_applies_the_auto_promotions(storefront):
    # given "10% off everything this weekend" and "free shipping on electronics"
    auto(
        "WEEKEND10", type="percentage", percent_bp=1000, description="Weekend sale", stackable=True
    )
    auto(
        "SHIPELEC",
        type="free_shipping",
        eligible_categories=["electronics"],
        description="Free shipping on electronics",
        stackable=True,
    )
    auto("BOOKS5", type="fixed", amount_minor=500, eligible_categories=["books"], stackable=True)
    # when
    response = post(storefront, EVALUATE)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["discount"] == "15.00"
    assert body["shipping_discount"] == "7.99"
    assert body["subtotal"] == "150.00"
    assert body["shipping"] == "7.99"
    assert body["total"] == "135.00"
    assert body["rejected"] == []
    assert body["not_applied"] == []
    applied = {a["code"]: a for a in body["applied"]}
    assert set(applied) == {"WEEKEND10", "SHIPELEC"}
    assert applied["WEEKEND10"] == {
        "code": "WEEKEND10",
        "promotion": "Weekend sale",
        "auto": True,
        "type": "percentage",
        "discount": "15.00",
        "shipping_discount": "0.00",
        "message": "10% off",
        "lines": [{"sku": "SKU-1", "discount": "15.00"}],
    }
    assert applied["SHIPELEC"]["promotion"] == "Free shipping on electronics"
    assert body["lines"] == [{"sku": "SKU-1", "discount": "15.00"}]
    assert body["stacking_policy"] == "by_group"
    assert body["exact"] is True


def test_cart_value_promotion_needs_its_minimum(storefront):
    auto("SPEND100", type="fixed", amount_minor=1500, min_cart_minor=10000, stackable=True)
    small = post(storefront, EVALUATE, cart=cart(("A", "home", "99.99", 1))).json()
    big = post(storefront, EVALUATE, cart=CART_100).json()
    assert small["applied"] == []
    assert small["discount"] == "0.00"
    assert small["total"] == "99.99"
    assert [a["code"] for a in big["applied"]] == ["SPEND100"]
    assert big["discount"] == "15.00"
    assert big["total"] == "90.00"


def test_typed_code_beats_a_smaller_auto_promotion_and_says_why(storefront):
    # seed 004, option c: the better deal wins; both are percentages (same group)
    summer25()
    auto(
        "WEEKEND10", type="percentage", percent_bp=1000, stackable=True, description="Weekend sale"
    )
    body = post(storefront, EVALUATE, coupon_codes=["SUMMER25"]).json()
    assert [a["code"] for a in body["applied"]] == ["SUMMER25"]
    assert body["applied"][0]["auto"] is False
    assert body["discount"] == "37.50"
    assert body["rejected"] == []
    [lost] = body["not_applied"]
    assert lost["code"] == "WEEKEND10"
    assert lost["promotion"] == "Weekend sale"
    assert lost["reason"] == "stack_group_conflict"
    assert "better combination" in lost["message"]
    assert "SUMMER25" in lost["message"]


def test_auto_promotion_beats_a_smaller_typed_code_and_says_why(storefront):
    CouponFactory(code="TENPCT", percent_bp=1000, stackable=False)
    auto("MEGA", type="fixed", amount_minor=4000, stackable=True, description="Mega sale")
    body = post(storefront, EVALUATE, coupon_codes=["TENPCT"]).json()
    assert [a["code"] for a in body["applied"]] == ["MEGA"]
    assert body["discount"] == "40.00"
    [rejected] = body["rejected"]
    assert rejected["code"] == "TENPCT"
    assert rejected["reason"] == "not_stackable"
    assert "better combination" in rejected["message"]
    assert "MEGA" in rejected["message"]
    assert "$40.00" in rejected["message"]
    assert "$15.00" in rejected["message"]
    # validate and apply say the same: the typed code is not applied
    validate = post(storefront, VALIDATE, coupon_code="TENPCT").json()
    assert validate == {
        "valid": False,
        "reason": "not_stackable",
        "message": rejected["message"],
        "code": "TENPCT",
    }
    apply = post(storefront, APPLY, coupon_code="TENPCT", order_id="o-1")
    assert apply.status_code == 422
    assert apply.json()["reason"] == "not_stackable"
    assert not Redemption.objects.exists()


def test_ineligible_typed_codes_are_rejected_with_their_reason(storefront):
    summer25(valid_to=timezone.now() - timedelta(days=1), valid_from=None)
    body = post(storefront, EVALUATE, coupon_codes=["SUMMER25", "NOPE"]).json()
    assert [(x["code"], x["reason"]) for x in body["rejected"]] == [
        ("SUMMER25", "coupon_expired"),
        ("NOPE", "coupon_not_found"),
    ]
    assert body["applied"] == []
    assert body["total"] == "157.99"


def test_auto_promotions_follow_segments_first_purchase_and_limits(storefront):
    auto(
        "VIP",
        type="fixed",
        amount_minor=500,
        eligible_segments=["vip"],
        stackable=True,
        stack_group="a",
    )
    auto(
        "WELCOME",
        type="fixed",
        amount_minor=700,
        first_purchase_only=True,
        stackable=True,
        stack_group="b",
    )
    auto(
        "ONCE", type="fixed", amount_minor=300, max_uses_per_user=1, stackable=True, stack_group="c"
    )
    auto(
        "SOLDOUT", type="fixed", amount_minor=900, max_uses_total=1, stackable=True, stack_group="d"
    )
    Coupon.objects.filter(code="SOLDOUT").update(uses=1)
    CustomerFactory(external_id="old", orders_count=3, segments=["vip"])

    def codes(**body):
        return sorted(a["code"] for a in post(storefront, EVALUATE, **body).json()["applied"])

    assert codes(user_id="new") == ["ONCE", "WELCOME"]
    assert codes(customer={"id": "new", "segments": ["vip"]}) == ["ONCE", "VIP", "WELCOME"]
    assert codes(user_id="old") == ["ONCE", "VIP"]  # stored segment; not a first purchase
    # anonymous: nothing that needs a customer
    anonymous = storefront.post(EVALUATE, {"cart": CART_150}, format="json").json()
    assert anonymous["applied"] == []


def test_currency_keeps_promotions_apart(storefront):
    auto("EUR10", type="percentage", percent_bp=1000, currency="EUR")
    usd = post(storefront, EVALUATE).json()
    eur = post(storefront, EVALUATE, cart=cart(("A", "x", "10.00", 1), currency="EUR")).json()
    assert usd["applied"] == []
    assert eur["discount"] == "1.00"
    assert eur["currency"] == "EUR"


# --- the seed's stacking examples and every policy ----------------------------------------


def test_seed_summer25_and_freeship_stack_by_group(storefront):
    summer25()
    freeship()
    body = post(storefront, EVALUATE, coupon_codes=["SUMMER25", "FREESHIP"]).json()
    assert sorted(a["code"] for a in body["applied"]) == ["FREESHIP", "SUMMER25"]
    assert (body["discount"], body["shipping_discount"], body["total"]) == (
        "37.50",
        "7.99",
        "112.50",
    )


def test_seed_summer25_and_fall20_conflict_by_group(storefront):
    summer25()
    CouponFactory(code="FALL20", percent_bp=2000, stackable=True, stack_group="percentage")
    body = post(storefront, EVALUATE, coupon_codes=["FALL20", "SUMMER25"]).json()
    assert [a["code"] for a in body["applied"]] == ["SUMMER25"]
    assert [(x["code"], x["reason"]) for x in body["rejected"]] == [
        ("FALL20", "stack_group_conflict")
    ]
    validate = post(storefront, VALIDATE, coupon_codes=["SUMMER25", "FALL20"]).json()
    assert (validate["valid"], validate["reason"], validate["code"]) == (
        False,
        "stack_group_conflict",
        "FALL20",
    )


def test_seed_25_percent_and_10_fixed_give_35_off(storefront):
    CouponFactory(code="PCT25", percent_bp=2500, stackable=True, stack_group="percentage")
    CouponFactory(
        code="TENOFF",
        type="fixed",
        percent_bp=None,
        amount_minor=1000,
        stackable=True,
        stack_group="fixed",
    )
    for codes in (["TENOFF", "PCT25"], ["PCT25", "TENOFF"]):
        body = post(storefront, EVALUATE, coupon_codes=codes, cart=CART_100).json()
        assert body["discount"] == "35.00"
        assert [a["code"] for a in body["applied"]] == ["PCT25", "TENOFF"]


@pytest.mark.parametrize(
    ("policy", "applied", "rejected"),
    [
        ("none", ["SUMMER25"], {"FREESHIP": "not_stackable", "FALL20": "not_stackable"}),
        ("by_group", ["SUMMER25", "FREESHIP"], {"FALL20": "stack_group_conflict"}),
        # 25% then 20% or 20% then 25% of $150: $60 either way; the tie keeps rank (code) order
        ("full", ["FALL20", "SUMMER25", "FREESHIP"], {}),
    ],
)
def test_policy_singleton_decides_the_stacking(storefront, policy, applied, rejected):
    summer25()
    freeship()
    CouponFactory(code="FALL20", percent_bp=2000, stackable=True, stack_group="percentage")
    set_policy(policy)
    body = post(storefront, EVALUATE, coupon_codes=["SUMMER25", "FREESHIP", "FALL20"]).json()
    assert body["stacking_policy"] == policy
    assert [a["code"] for a in body["applied"]] == applied
    assert {x["code"]: x["reason"] for x in body["rejected"]} == rejected


def test_full_policy_percentages_compound_on_the_reduced_base(storefront):
    set_policy("full")
    summer25()
    CouponFactory(code="FALL20", percent_bp=2000, stackable=True, stack_group="percentage")
    body = post(storefront, EVALUATE, coupon_codes=["SUMMER25", "FALL20"], cart=CART_100).json()
    assert body["discount"] == "40.00"  # 25% of 100, then 20% of the 75 left


def test_non_stackable_coupon_stands_alone_even_under_full(storefront):
    set_policy("full")
    CouponFactory(code="SOLO", type="fixed", percent_bp=None, amount_minor=2000)
    freeship()
    body = post(storefront, EVALUATE, coupon_codes=["SOLO", "FREESHIP"]).json()
    assert [a["code"] for a in body["applied"]] == ["SOLO"]
    assert body["rejected"][0]["reason"] == "not_stackable"


def test_discount_never_exceeds_subtotal_nor_shipping(storefront):
    set_policy("full")
    for i, amount in enumerate((9000, 9000, 5000)):
        auto(f"BIG{i}", type="fixed", amount_minor=amount, stackable=True)
    auto("SHIP", type="free_shipping", stackable=True)
    body = post(storefront, EVALUATE, cart=CART_100).json()
    assert body["discount"] == "100.00"
    assert body["shipping_discount"] == "5.00"
    assert body["total"] == "0.00"


# --- validate and apply use the same evaluation -------------------------------------------


def test_validate_evaluate_and_apply_agree(storefront):
    summer25()
    auto("SHIPALL", type="free_shipping", stackable=True, stack_group="shipping")
    auto(
        "TENOFF",
        type="fixed",
        amount_minor=1000,
        min_cart_minor=10000,
        stackable=True,
        stack_group="fixed",
    )
    evaluated = post(storefront, EVALUATE, coupon_code="SUMMER25").json()
    validated = post(storefront, VALIDATE, coupon_code="SUMMER25").json()
    applied = post(storefront, APPLY, coupon_code="SUMMER25", order_id="o-1")
    assert applied.status_code == 200, applied.content
    applied = applied.json()
    assert evaluated["discount"] == validated["discount"] == applied["discount"] == "47.50"
    assert (
        evaluated["shipping_discount"]
        == validated["shipping_discount"]
        == applied["shipping_discount"]
        == "7.99"
    )
    assert validated["valid"] is True
    assert validated["type"] == "percentage"
    assert {c["code"]: c["auto"] for c in validated["coupons"]} == {
        "SUMMER25": False,
        "TENOFF": True,
        "SHIPALL": True,
    }
    assert {(x["code"], x["auto"]) for x in applied["redemptions"]} == {
        ("SUMMER25", False),
        ("TENOFF", True),
        ("SHIPALL", True),
    }
    rows = Redemption.objects.filter(order_id="o-1")
    assert sorted((x.code.code, x.auto) for x in rows) == [
        ("SHIPALL", True),
        ("SUMMER25", False),
        ("TENOFF", True),
    ]
    assert Coupon.objects.get(code="TENOFF").uses == 1


def test_apply_without_codes_reserves_the_chosen_promotions(storefront):
    auto("WEEKEND10", type="percentage", percent_bp=1000, stackable=True)
    auto("WEEKEND5", type="percentage", percent_bp=500, stackable=True)  # loses (same group)
    first = post(storefront, APPLY, order_id="o-1")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["applied"] is True
    assert body["discount"] == "15.00"
    assert [(x["code"], x["auto"]) for x in body["redemptions"]] == [("WEEKEND10", True)]
    # a retry with another key is a replay of the held promotions
    again = storefront.post(
        APPLY,
        {"order_id": "o-1", "cart": CART_150, "user_id": "u-1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="other",
    )
    assert again.status_code == 200
    assert again.json()["redemptions"] == body["redemptions"]
    assert Coupon.objects.get(code="WEEKEND10").uses == 1
    assert Coupon.objects.get(code="WEEKEND5").uses == 0
    # the order confirms like any other
    confirm = storefront.post("/api/v1/orders/o-1/confirm")
    assert confirm.status_code == 200
    assert confirm.json()["status"] == "confirmed"


def test_apply_without_codes_and_nothing_to_apply(storefront):
    response = post(storefront, APPLY, order_id="o-1")
    assert response.status_code == 200
    assert response.json() == {
        "applied": True,
        "discount": "0.00",
        "shipping_discount": "0.00",
        "order_id": "o-1",
        "redemptions": [],
    }


def test_typed_codes_on_an_order_holding_promotions_conflict(storefront):
    auto("WEEKEND10", type="percentage", percent_bp=1000, stackable=True)
    summer25()
    assert post(storefront, APPLY, order_id="o-1").status_code == 200
    response = storefront.post(
        APPLY,
        {"order_id": "o-1", "coupon_code": "SUMMER25", "cart": CART_150, "user_id": "u-1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="second",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_has_coupons"


def test_a_promotion_at_its_limit_is_skipped_on_apply(storefront):
    auto("LAST", type="fixed", amount_minor=2000, max_uses_total=1, stackable=True)
    auto("SMALL", type="fixed", amount_minor=500, stackable=True)  # same group "fixed"
    assert [x["code"] for x in post(storefront, APPLY, order_id="o-1").json()["redemptions"]] == [
        "LAST"
    ]
    second = post(storefront, APPLY, order_id="o-2").json()
    assert [x["code"] for x in second["redemptions"]] == ["SMALL"]
    assert Coupon.objects.get(code="LAST").uses == 1


# --- freshness ----------------------------------------------------------------------------


def test_changes_are_seen_by_the_next_evaluation(storefront, admin_api):
    promo = auto("FLASH", type="percentage", percent_bp=1000, stackable=True)
    assert post(storefront, EVALUATE).json()["discount"] == "15.00"
    # an admin API change
    admin_api.patch("/api/v1/admin/coupons/FLASH", {"value": 20}, format="json")
    assert post(storefront, EVALUATE).json()["discount"] == "30.00"
    # an ORM save (the Django admin)
    promo.refresh_from_db()
    promo.active = False
    promo.save()
    assert post(storefront, EVALUATE).json()["applied"] == []
    # the stacking policy singleton
    Coupon.objects.filter(pk=promo.pk).update(active=True)
    promotions.changed()
    set_policy("none")
    assert post(storefront, EVALUATE).json()["stacking_policy"] == "none"


def test_evaluate_is_read_only(storefront):
    auto("LIMITED", type="percentage", percent_bp=1000, max_uses_total=5, stackable=True)
    for _ in range(3):
        post(storefront, EVALUATE)
    assert Coupon.objects.get(code="LIMITED").uses == 0
    assert not Redemption.objects.exists()


def test_evaluate_requires_the_storefront_scope(admin_api, client):
    assert admin_api.post(EVALUATE, {"cart": CART_150}, format="json").status_code == 403
    assert (
        client.post(EVALUATE, {"cart": CART_150}, content_type="application/json").status_code
        == 401
    )


def test_customer_token_cannot_grant_segments(customer_client):
    auto("VIP", type="fixed", amount_minor=500, eligible_segments=["vip"])
    client = customer_client("u-1")
    body = client.post(
        EVALUATE, {"customer": {"id": "u-1", "segments": ["vip"]}, "cart": CART_150}, format="json"
    ).json()
    assert body["applied"] == []
