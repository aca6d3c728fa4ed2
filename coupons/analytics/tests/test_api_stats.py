from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from coupons.analytics.tests.factories import at, days_ago, event, write
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/coupons/{}/stats"


@pytest.fixture
def coupon():
    c = CouponFactory(code="API10", budget_minor=5000)
    write(
        event("validate", at(days_ago(0), 0, 1), coupon_id=c.pk, currency="USD", outcome="valid"),
        event(
            "confirm",
            at(days_ago(0), 0, 2),
            coupon_id=c.pk,
            currency="USD",
            customer_id="u-1",
            new_customer=True,
            discount_minor=250,
            order_value_minor=2500,
        ),
        event(
            "confirm",
            at(days_ago(30)),
            coupon_id=c.pk,
            currency="USD",
            discount_minor=999,
            order_value_minor=9999,
        ),
    )
    return c


def test_requires_an_admin_key(coupon, storefront):
    assert APIClient().get(URL.format("API10")).status_code == 401
    response = storefront.get(URL.format("API10"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_unknown_coupon_is_404(admin_api):
    response = admin_api.get(URL.format("NOPE"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "coupon_not_found"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-11-10&to=2026-11-09", "from"),
        ("from=2025-01-01&to=2026-01-02", "to"),  # 367 days
        ("from=0001-01-01&to=0001-01-02", "from"),
    ],
)
def test_bad_ranges_are_400_with_field_errors(coupon, admin_api, query, field):
    response = admin_api.get(URL.format("API10") + "?" + query)
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid_request"
    assert field in body["fields"]


def test_a_year_is_allowed(coupon, admin_api):
    response = admin_api.get(URL.format("API10") + "?from=2025-01-01&to=2026-01-01")
    assert response.status_code == 200
    assert len(response.json()["daily"]) == 366


def test_stats_default_to_the_last_30_days(coupon, admin_api):
    response = admin_api.get(URL.format("api10"))  # any case
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["from"], body["to"]) == (
        "API10",
        days_ago(29).isoformat(),
        days_ago(0).isoformat(),
    )
    assert (
        body["validation_attempts"],
        body["redemptions"],
        body["discount_given"],
        body["order_value"],
        body["redemption_rate"],
        body["new_customers"],
    ) == (1, 1, "2.50", "25.00", 1.0, 1)
    assert body["budget"] == {
        "budget": "50.00",
        "spent": "0.00",
        "reserved": "0.00",
        "remaining": "50.00",
        "burn": 0.0,
    }
    assert len(body["daily"]) == 30
    assert body["daily"][-1]["redemptions"] == 1
    assert body["orders"] == 1
    assert set(body["daily"][0]) == {
        "day",
        "validations",
        "redemptions",
        "orders",
        "discount",
        "order_value",
        "revenue_impact",
        "new_customers",
    }


def test_explicit_range(coupon, admin_api):
    day = days_ago(30)
    response = admin_api.get(URL.format("API10") + f"?from={day}&to={day + timedelta(days=1)}")
    body = response.json()
    assert response.status_code == 200
    # day 30 was never rolled up: closed days are read from the daily facts
    assert (body["redemptions"], len(body["daily"])) == (0, 2)


def test_the_openapi_schema_describes_the_endpoint(tmp_path):
    import yaml
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    operation = schema["paths"]["/api/v1/admin/coupons/{code}/stats"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"code", "from", "to"}
    stats = schema["components"]["schemas"]["CouponStats"]
    assert {"redemption_rate", "discount_per_new_customer", "budget", "daily", "from"} <= set(
        stats["properties"]
    )
