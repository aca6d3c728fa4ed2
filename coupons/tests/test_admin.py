"""The Django admin marketing uses: pages render, the marketing group's permissions hold,
the coupon form converts decimals to minor units / basis points and refuses bad rules,
and writes go through the services (codes created, counters kept, cache dropped)."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from core.errors import Conflict
from core.models import ApiKey, IdempotencyRecord
from coupons import selectors, services
from coupons.models import Code, Coupon, Customer, Redemption
from coupons.tests.factories import CodeFactory, CouponFactory, CustomerFactory

pytestmark = pytest.mark.django_db

ADD_COUPON = reverse("admin:coupons_coupon_add")
COUPONS = reverse("admin:coupons_coupon_changelist")


def coupon_form(**overrides) -> dict:
    """A complete add-form POST for a 25% coupon; override or drop (None) any input."""
    data = {
        "code": "summer25",
        "description": "Summer sale",
        "type": "percentage",
        "currency": "USD",
        "active": "on",
        "priority": "0",
        "percent": "25",
        "cap": "",
        "amount": "",
        "tiers_text": "",
        "bogo_buy": "",
        "bogo_get": "",
        "bogo_percent_off": "",
        "min_cart": "",
        "eligible_categories": "",
        "eligible_skus": "",
        "excluded_skus": "",
        "eligible_segments": "",
        "max_uses_total": "",
        "max_uses_per_user": "",
        "valid_from_0": "2030-06-01",
        "valid_from_1": "00:00:00",
        "valid_to_0": "2030-09-01",
        "valid_to_1": "00:00:00",
        "stack_group": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def change_form(coupon: Coupon, **overrides) -> dict:
    """The change-form POST that keeps everything (the code is read-only there)."""
    data = coupon_form(
        code=None,
        percent=str(coupon.percent_bp // 100),
        valid_from_0=None,
        valid_from_1=None,
        valid_to_0=None,
        valid_to_1=None,
    )
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def form_errors(response) -> dict:
    form = response.context["adminform"].form
    return {name or "__all__": [str(e) for e in errors] for name, errors in form.errors.items()}


def redemption_for(coupon: Coupon, **kw) -> Redemption:
    code = coupon.codes.get()
    fields = {
        "coupon": coupon,
        "code": code,
        "customer": CustomerFactory(),
        "order_id": "order-1",
        "currency": "USD",
        "discount_minor": 3750,
        "order_value_minor": 15000,
        "expires_at": timezone.now() + timedelta(hours=1),
    }
    fields.update(kw)
    return Redemption.objects.create(**fields)


# --- pages render -------------------------------------------------------------------------


def test_changelists_render_for_superuser(admin_client):
    coupon = CouponFactory(code="SUMMER25", percent_bp=2500, max_uses_total=1000)
    Coupon.objects.filter(pk=coupon.pk).update(uses=12)
    CouponFactory(code="TENOFF", type="fixed", percent_bp=None, amount_minor=1000)
    redemption_for(coupon)
    ApiKey.objects.create_key(name="shop", scopes=["storefront"])
    IdempotencyRecord.objects.create(
        principal="api_key:abc",
        key="k1",
        fingerprint="f",
        method="POST",
        path="/api/v1/coupons/apply",
    )

    pages = {
        name: admin_client.get(reverse(f"admin:{name}_changelist"))
        for name in (
            "coupons_coupon",
            "coupons_code",
            "coupons_redemption",
            "coupons_customer",
            "core_apikey",
            "core_idempotencyrecord",
        )
    }

    assert {name: r.status_code for name, r in pages.items()} == dict.fromkeys(pages, 200)
    coupons = pages["coupons_coupon"].content.decode()
    assert "25%" in coupons
    assert "12/1000" in coupons
    assert "$10.00" in coupons
    assert "0/∞" in coupons
    assert "$37.50" in pages["coupons_redemption"].content.decode()
    assert "storefront" in pages["core_apikey"].content.decode()
    assert "api_key:abc" in pages["core_idempotencyrecord"].content.decode()


def test_change_pages_render_with_decimal_values(admin_client):
    coupon = CouponFactory(code="SUMMER25", percent_bp=1250, cap_minor=5000, min_cart_minor=10000)
    redemption = redemption_for(coupon)

    page = admin_client.get(reverse("admin:coupons_coupon_change", args=[coupon.pk]))

    assert page.status_code == 200
    form = page.context["adminform"].form
    assert form["percent"].value() == "12.5"
    assert form["cap"].value() == "50.00"
    assert form["min_cart"].value() == "100.00"
    codes_url = reverse("admin:coupons_code_changelist") + f"?coupon__id__exact={coupon.pk}"
    assert codes_url in page.content.decode()
    assert "1 code(s)" in page.content.decode()
    for url in (
        reverse("admin:coupons_code_change", args=[coupon.codes.get().pk]),
        reverse("admin:coupons_redemption_change", args=[redemption.pk]),
        reverse("admin:coupons_customer_change", args=[redemption.customer_id]),
        codes_url,
    ):
        assert admin_client.get(url).status_code == 200, url


def test_code_search_and_coupon_search_find_the_public_code(admin_client):
    coupon = CouponFactory(code="SPRING")
    CodeFactory(coupon=coupon, code="LEAKED-123")
    CouponFactory(code="OTHER")

    codes = admin_client.get(reverse("admin:coupons_code_changelist"), {"q": "leaked"})
    coupons = admin_client.get(COUPONS, {"q": "LEAKED-123"})

    assert [c.code for c in codes.context["cl"].result_list] == ["LEAKED-123"]
    assert [c.code for c in coupons.context["cl"].result_list] == ["SPRING"]


# --- marketing group --------------------------------------------------------------------


def test_marketing_can_open_coupon_screens(marketing_client):
    CouponFactory()
    assert marketing_client.get(COUPONS).status_code == 200
    assert marketing_client.get(ADD_COUPON).status_code == 200
    assert marketing_client.get(reverse("admin:coupons_code_changelist")).status_code == 200
    assert marketing_client.get(reverse("admin:coupons_redemption_changelist")).status_code == 200


def test_marketing_cannot_change_add_or_delete_redemptions(marketing_client):
    redemption = redemption_for(CouponFactory())
    change = reverse("admin:coupons_redemption_change", args=[redemption.pk])

    assert marketing_client.get(change).status_code == 200  # view only
    assert marketing_client.post(change, {"order_id": "x"}).status_code == 403
    assert (
        marketing_client.get(
            reverse("admin:coupons_redemption_delete", args=[redemption.pk])
        ).status_code
        == 403
    )
    assert marketing_client.get(reverse("admin:coupons_redemption_add")).status_code == 403
    redemption.refresh_from_db()
    assert redemption.order_id == "order-1"


def test_redemptions_are_read_only_even_for_superuser(admin_client):
    redemption = redemption_for(CouponFactory())
    response = admin_client.post(
        reverse("admin:coupons_redemption_delete", args=[redemption.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Redemption.objects.filter(pk=redemption.pk).exists()


def test_marketing_cannot_see_api_keys(marketing_client):
    assert marketing_client.get(reverse("admin:core_apikey_changelist")).status_code == 403
    assert marketing_client.get(reverse("admin:core_apikey_add")).status_code == 403
    index = marketing_client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert "API keys" not in index.content.decode()
    assert "Coupons" in index.content.decode()


# --- coupon form ------------------------------------------------------------------------


def test_add_coupon_creates_coupon_and_public_code_in_minor_units(marketing_client):
    response = marketing_client.post(
        ADD_COUPON, coupon_form(cap="50", min_cart="100.00", max_uses_total="1000")
    )

    assert response.status_code == 302, form_errors(response)
    coupon = Coupon.objects.get(code="SUMMER25")
    assert coupon.percent_bp == 2500
    assert coupon.cap_minor == 5000
    assert coupon.min_cart_minor == 10000
    assert coupon.amount_minor is None
    assert coupon.max_uses_total == 1000
    assert (coupon.uses, coupon.version) == (0, 1)
    assert list(coupon.codes.values_list("code", flat=True)) == ["SUMMER25"]
    assert response["Location"] == COUPONS
    assert LogEntry.objects.filter(object_id=str(coupon.pk)).exists()


def test_add_fixed_and_tiered_coupons_convert_in_their_currency(admin_client):
    fixed = admin_client.post(
        ADD_COUPON,
        coupon_form(code="YEN500", type="fixed", currency="JPY", percent="", amount="500"),
    )
    tiered = admin_client.post(
        ADD_COUPON,
        coupon_form(code="SPEND", type="tiered", percent="", tiers_text="200.00:25\n\n100:10.50\n"),
    )

    assert fixed.status_code == 302, form_errors(fixed)
    assert tiered.status_code == 302, form_errors(tiered)
    yen = Coupon.objects.get(code="YEN500")
    assert (yen.amount_minor, yen.currency, yen.percent_bp) == (500, "JPY", None)
    assert Coupon.objects.get(code="SPEND").tiers == [
        {"threshold_minor": 10000, "discount_minor": 1050},
        {"threshold_minor": 20000, "discount_minor": 2500},
    ]


def test_form_rejects_percent_over_100(admin_client):
    response = admin_client.post(ADD_COUPON, coupon_form(percent="150"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "percent": ["A percentage must be more than 0 and at most 100."]
    }
    assert not Coupon.objects.exists()
    assert not Code.objects.exists()


def test_form_rejects_window_that_ends_before_it_starts(admin_client):
    response = admin_client.post(
        ADD_COUPON, coupon_form(valid_from_0="2030-09-01", valid_to_0="2030-06-01")
    )

    assert response.status_code == 200
    assert form_errors(response) == {"valid_to": ["valid_to must be after valid_from."]}
    assert "valid_to must be after valid_from." in response.content.decode()
    assert not Coupon.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cap": "-1"}, "cap"),
        ({"min_cart": "-0.01"}, "min_cart"),
        ({"type": "fixed", "percent": "", "amount": "-5"}, "amount"),
        ({"type": "fixed", "percent": ""}, "amount"),  # no amount at all
        ({"amount": "1.234", "type": "fixed", "percent": ""}, "amount"),  # USD has 2 digits
        ({"type": "tiered", "percent": "", "tiers_text": "100"}, "tiers_text"),
        ({"type": "tiered", "percent": "", "tiers_text": ""}, "tiers_text"),
        ({"code": "has space"}, "code"),
    ],
)
def test_form_rejects_bad_money_and_rules(admin_client, overrides, field):
    response = admin_client.post(ADD_COUPON, coupon_form(**overrides))

    assert response.status_code == 200
    assert field in form_errors(response)
    assert not Coupon.objects.exists()


def test_bogo_without_buy_and_get_is_a_non_field_error(admin_client):
    response = admin_client.post(ADD_COUPON, coupon_form(type="bogo", percent=""))

    assert response.status_code == 200
    assert form_errors(response) == {"__all__": ["A BOGO coupon needs buy >= 1 and get >= 1."]}


def test_form_rejects_a_code_that_already_exists_case_insensitively(admin_client):
    CodeFactory(code="SUMMER25")

    response = admin_client.post(ADD_COUPON, coupon_form(code=" summer25 "))

    assert response.status_code == 200
    assert form_errors(response) == {"code": ["A code 'SUMMER25' already exists."]}
    assert Coupon.objects.count() == 1  # the factory's


def test_service_refusal_becomes_a_message_not_a_crash(admin_client, monkeypatch):
    # given the service refuses at save time (a race the form could not see)
    def refuse(**kwargs):
        raise Conflict("coupon_exists", "A coupon or code 'SUMMER25' already exists.")

    monkeypatch.setattr(services, "coupon_create", refuse)

    response = admin_client.post(ADD_COUPON, coupon_form(), follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [(ADD_COUPON, 302)]
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["The coupon was not saved: A coupon or code 'SUMMER25' already exists."]
    assert not Coupon.objects.exists()
    assert not LogEntry.objects.exists()


def test_edit_goes_through_coupon_update_and_keeps_counters(admin_client):
    coupon = CouponFactory(code="SUMMER25", percent_bp=1000, max_uses_total=100)
    Coupon.objects.filter(pk=coupon.pk).update(uses=7)
    url = reverse("admin:coupons_coupon_change", args=[coupon.pk])

    response = admin_client.post(
        url, change_form(coupon, percent="20", max_uses_total="100", uses="0", version="99")
    )

    assert response.status_code == 302, form_errors(response)
    coupon.refresh_from_db()
    assert coupon.percent_bp == 2000
    assert coupon.uses == 7  # counters are never written from a form
    assert coupon.version == 2  # bumped once by coupon_update
    assert coupon.code == "SUMMER25"


def test_edit_cannot_lower_the_limit_below_uses(admin_client):
    coupon = CouponFactory(max_uses_total=100)
    Coupon.objects.filter(pk=coupon.pk).update(uses=7)

    response = admin_client.post(
        reverse("admin:coupons_coupon_change", args=[coupon.pk]),
        change_form(coupon, max_uses_total="5"),
    )

    assert response.status_code == 200
    assert list(form_errors(response)) == ["max_uses_total"]
    coupon.refresh_from_db()
    assert coupon.max_uses_total == 100


# --- actions ----------------------------------------------------------------------------


def test_deactivate_action_stops_coupons_and_drops_the_cached_rule(
    marketing_client, django_capture_on_commit_callbacks
):
    stop, other = CouponFactory(code="LEAKED"), CouponFactory(code="KEEP")
    assert selectors.code_terms_get_many(["LEAKED"])["LEAKED"].rule.active  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = marketing_client.post(
            COUPONS, {"action": "deactivate", "_selected_action": [stop.pk]}, follow=True
        )

    assert response.status_code == 200
    stop.refresh_from_db()
    other.refresh_from_db()
    assert (stop.active, stop.version) == (False, 2)
    assert other.active is True
    assert [str(m) for m in response.context["messages"]] == [
        "Deactivated 1 coupon(s); they stop applying now."
    ]
    assert selectors.code_terms_get_many(["LEAKED"])["LEAKED"].rule.active is False


def test_activate_action(admin_client):
    coupons = [CouponFactory(active=False), CouponFactory(active=False)]

    admin_client.post(COUPONS, {"action": "activate", "_selected_action": [c.pk for c in coupons]})

    assert Coupon.objects.filter(active=True).count() == 2


def test_code_actions_and_edits_drop_the_cached_code(
    admin_client, django_capture_on_commit_callbacks
):
    code = CodeFactory(code="ONE-USE", max_uses=1)
    assert selectors.code_terms_get_many(["ONE-USE"])["ONE-USE"].active  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:coupons_code_changelist"),
            {"action": "deactivate", "_selected_action": [code.pk]},
        )
    assert selectors.code_terms_get_many(["ONE-USE"])["ONE-USE"].active is False

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:coupons_code_change", args=[code.pk]),
            {
                "coupon": code.coupon_id,
                "max_uses": "5",
                "expires_at_0": "",
                "expires_at_1": "",
                "customer": "",
                "active": "on",
            },
        )
    assert response.status_code == 302
    terms = selectors.code_terms_get_many(["ONE-USE"])["ONE-USE"]
    assert (terms.active, terms.max_uses) == (True, 5)


def test_code_add_normalizes_and_max_uses_cannot_go_below_uses(admin_client):
    coupon = CouponFactory()
    add = admin_client.post(
        reverse("admin:coupons_code_add"),
        {
            "coupon": coupon.pk,
            "code": " vip-42 ",
            "max_uses": "",
            "expires_at_0": "",
            "expires_at_1": "",
            "customer": "",
            "active": "on",
        },
    )
    assert add.status_code == 302
    code = Code.objects.get(code="VIP-42")
    Code.objects.filter(pk=code.pk).update(uses=3)

    change = admin_client.post(
        reverse("admin:coupons_code_change", args=[code.pk]),
        {
            "coupon": coupon.pk,
            "max_uses": "2",
            "expires_at_0": "",
            "expires_at_1": "",
            "customer": "",
            "active": "on",
        },
    )

    assert change.status_code == 200
    assert list(form_errors(change)) == ["max_uses"]
    code.refresh_from_db()
    assert code.max_uses is None


# --- API keys and customers -------------------------------------------------------------


def test_api_key_is_shown_once_and_stored_with_scopes(admin_client):
    response = admin_client.post(
        reverse("admin:core_apikey_add"),
        {"name": "checkout", "scopes": ["storefront", "admin"]},
        follow=True,
    )

    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="checkout")
    assert sorted(api_key.scopes) == ["admin", "storefront"]
    shown = " ".join(str(m) for m in response.context["messages"])
    key = re.search(r"is: (\S+)\. Please store it", shown).group(1)
    assert ApiKey.objects.get_from_key(key).pk == api_key.pk


def test_customer_orders_count_is_read_only(admin_client):
    customer = CustomerFactory(orders_count=2)
    external_id = customer.external_id
    response = admin_client.post(
        reverse("admin:coupons_customer_change", args=[customer.pk]),
        {"segments": "vip,new", "orders_count": "0", "external_id": "hijack"},
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.segments == ["vip", "new"]
    assert (customer.orders_count, customer.external_id) == (2, external_id)
    assert not Customer.objects.filter(external_id="hijack").exists()


def test_coupon_page_links_analytics_and_what_if(marketing_client):
    coupon = CouponFactory(code="LINKS")
    page = marketing_client.get(reverse("admin:coupons_coupon_change", args=[coupon.pk]))
    assert f"{reverse('admin:analytics_dashboard')}?coupon=LINKS".encode() in page.content
    assert (
        reverse("admin:analytics_simulationrun_simulate", args=[coupon.pk]).encode() in page.content
    )
