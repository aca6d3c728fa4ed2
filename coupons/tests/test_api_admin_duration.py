"""A coupon's billing duration (API.md "Promotions at billing"): `duration` once, repeating
or forever, and for repeating `duration_invoices` N. Through the admin API (create, PATCH
as one setting, bad values a 400 on the field, shown on every read), the Django admin form,
and the database's own check (coupon_duration_invoices_matches) behind both; raw-SQL
inserts that do not name the columns get `once`."""

import pytest
from django.db import connection
from django.urls import reverse

from coupons.models import Coupon
from coupons.tests.factories import CouponFactory
from coupons.tests.test_admin import change_form, coupon_form, form_errors

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/coupons"
ADD_COUPON = reverse("admin:coupons_coupon_add")
BASE = {"type": "percentage", "value": 20}


def create(admin_api, code="SUB20", **body):
    return admin_api.post(URL, {"code": code, **BASE, **body}, format="json")


def field_errors(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content)
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    return error["fields"]


# --- create --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ({}, ("once", None)),  # the default
        ({"duration": "once"}, ("once", None)),
        ({"duration": "once", "duration_invoices": None}, ("once", None)),
        ({"duration": "forever"}, ("forever", None)),
        ({"duration": "repeating", "duration_invoices": 3}, ("repeating", 3)),
        ({"duration": "repeating", "duration_invoices": 1}, ("repeating", 1)),
    ],
)
def test_create_with_each_duration(admin_api, body, stored):
    # when
    response = create(admin_api, **body)
    # then
    assert response.status_code == 201, response.content
    coupon = Coupon.objects.get(code="SUB20")
    assert (coupon.duration, coupon.duration_invoices) == stored
    assert (response.json()["duration"], response.json()["duration_invoices"]) == stored


@pytest.mark.parametrize("body", [{}, {"duration_invoices": None}])
def test_repeating_without_invoices_is_a_400_on_duration_invoices(admin_api, body):
    response = create(admin_api, duration="repeating", **body)
    assert field_errors(response) == {
        "duration_invoices": ["Required when duration is repeating (at least 1)."]
    }
    assert not Coupon.objects.exists()


@pytest.mark.parametrize("duration", ["once", "forever", None])
def test_invoices_without_repeating_is_a_400(admin_api, duration):
    body = {} if duration is None else {"duration": duration}  # None: the default, once
    response = create(admin_api, duration_invoices=3, **body)
    assert field_errors(response) == {
        "duration_invoices": ["Only a repeating coupon takes a number of invoices."]
    }
    assert not Coupon.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration": "weekly"}, "duration"),
        ({"duration": ""}, "duration"),
        ({"duration": None}, "duration"),
        ({"duration": 3}, "duration"),
        ({"duration": "repeating", "duration_invoices": 0}, "duration_invoices"),
        ({"duration": "repeating", "duration_invoices": -1}, "duration_invoices"),
        ({"duration": "repeating", "duration_invoices": "three"}, "duration_invoices"),
        ({"duration": "repeating", "duration_invoices": 1.5}, "duration_invoices"),
        ({"duration": "repeating", "duration_invoices": 2**31}, "duration_invoices"),
    ],
)
def test_bad_values_are_a_400_on_the_field(admin_api, body, field):
    assert field in field_errors(create(admin_api, **body))
    assert not Coupon.objects.exists()


# --- PATCH: duration and duration_invoices are one setting ---------------------------------


def test_patch_to_repeating_without_invoices_is_a_400(admin_api):
    create(admin_api)
    response = admin_api.patch(f"{URL}/SUB20", {"duration": "repeating"}, format="json")
    assert field_errors(response) == {
        "duration_invoices": ["Required when duration is repeating (at least 1)."]
    }
    coupon = Coupon.objects.get(code="SUB20")
    assert (coupon.duration, coupon.duration_invoices, coupon.version) == ("once", None, 1)


def test_patch_to_repeating_with_invoices(admin_api):
    create(admin_api)
    response = admin_api.patch(
        f"{URL}/SUB20", {"duration": "repeating", "duration_invoices": 6}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["duration"], response.json()["duration_invoices"]) == ("repeating", 6)
    coupon = Coupon.objects.get(code="SUB20")
    assert (coupon.duration, coupon.duration_invoices) == ("repeating", 6)


def test_patch_invoices_alone_on_a_repeating_coupon(admin_api):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(f"{URL}/SUB20", {"duration_invoices": 12}, format="json")
    assert response.status_code == 200, response.content
    assert Coupon.objects.get(code="SUB20").duration_invoices == 12


@pytest.mark.parametrize("value", [None, 0])
def test_patch_invoices_away_from_a_repeating_coupon_is_a_400(admin_api, value):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(f"{URL}/SUB20", {"duration_invoices": value}, format="json")
    assert "duration_invoices" in field_errors(response)
    assert Coupon.objects.get(code="SUB20").duration_invoices == 3


@pytest.mark.parametrize("duration", ["once", "forever"])
def test_patch_invoices_alone_on_a_non_repeating_coupon_is_a_400(admin_api, duration):
    create(admin_api, duration=duration)
    response = admin_api.patch(f"{URL}/SUB20", {"duration_invoices": 3}, format="json")
    assert field_errors(response) == {
        "duration_invoices": ["Only a repeating coupon takes a number of invoices."]
    }
    assert Coupon.objects.get(code="SUB20").duration == duration


@pytest.mark.parametrize("duration", ["once", "forever"])
def test_patch_away_from_repeating_drops_the_invoices(admin_api, duration):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(f"{URL}/SUB20", {"duration": duration}, format="json")
    assert response.status_code == 200, response.content
    coupon = Coupon.objects.get(code="SUB20")
    assert (coupon.duration, coupon.duration_invoices) == (duration, None)


def test_patch_away_from_repeating_with_invoices_is_a_400(admin_api):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(
        f"{URL}/SUB20", {"duration": "forever", "duration_invoices": 3}, format="json"
    )
    assert "duration_invoices" in field_errors(response)


def test_patch_of_another_field_keeps_the_duration(admin_api):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(f"{URL}/SUB20", {"priority": 5}, format="json")
    assert response.status_code == 200, response.content
    coupon = Coupon.objects.get(code="SUB20")
    assert (coupon.duration, coupon.duration_invoices, coupon.priority) == ("repeating", 3, 5)


@pytest.mark.parametrize(
    "body", [{"duration": "weekly"}, {"duration": None}, {"duration_invoices": "x"}]
)
def test_patch_bad_values_are_a_400(admin_api, body):
    create(admin_api, duration="repeating", duration_invoices=3)
    response = admin_api.patch(f"{URL}/SUB20", body, format="json")
    assert next(iter(body)) in field_errors(response)


# --- reads ---------------------------------------------------------------------------------


def test_get_and_list_show_the_duration(admin_api):
    create(admin_api, code="REPEAT3", duration="repeating", duration_invoices=3)
    create(admin_api, code="ALWAYS", duration="forever")

    one = admin_api.get(f"{URL}/REPEAT3").json()
    listed = {c["code"]: c for c in admin_api.get(URL).json()["results"]}

    assert (one["duration"], one["duration_invoices"]) == ("repeating", 3)
    assert (listed["ALWAYS"]["duration"], listed["ALWAYS"]["duration_invoices"]) == (
        "forever",
        None,
    )


# --- the database's check behind the validation --------------------------------------------


@pytest.fixture
def no_duration_checks(monkeypatch):
    """The serializer's duration rule switched off: only the check constraint remains."""
    monkeypatch.setattr("coupons.api.admin_serializers.duration_errors", lambda d, n: {})


def test_check_constraint_on_create_is_a_400_on_duration_invoices(admin_api, no_duration_checks):
    response = create(admin_api, duration="repeating")
    assert field_errors(response) == {"duration_invoices": ["This value is not allowed here."]}
    assert not Coupon.objects.exists()


def test_check_constraint_on_patch_is_a_400_on_duration_invoices(admin_api, no_duration_checks):
    CouponFactory(code="GUARD")
    response = admin_api.patch(f"{URL}/GUARD", {"duration_invoices": 2}, format="json")
    assert field_errors(response) == {"duration_invoices": ["This value is not allowed here."]}
    assert Coupon.objects.get(code="GUARD").duration_invoices is None


def test_raw_sql_insert_without_the_columns_is_once():
    # The bench seeds' INSERTs name the columns they knew of; the new ones default in SQL.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO coupons_coupon (
                code, description, type, currency, percent_bp, tiers, min_cart_minor,
                eligible_categories, eligible_skus, excluded_skus, eligible_segments,
                first_purchase_only, active, stackable, stack_group, auto_apply, priority,
                uses, version, budget_used_minor, farming_action, limit_by_identity,
                disabled_reason, created_at, updated_at)
            VALUES ('RAWSQL', '', 'percentage', 'USD', 1000, '[]', NULL, '{}', '{}', '{}',
                    '{}', false, true, false, '', false, 0, 0, 1, 0, 'flag', false, '',
                    now(), now())
            """
        )
    coupon = Coupon.objects.get(code="RAWSQL")
    assert (coupon.duration, coupon.duration_invoices) == ("once", None)


# --- the Django admin form -------------------------------------------------------------------


def test_admin_form_repeating_without_invoices_is_a_field_error(admin_client):
    response = admin_client.post(ADD_COUPON, coupon_form(duration="repeating"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "duration_invoices": ["Required when duration is repeating (at least 1)."]
    }
    assert "Required when duration is repeating" in response.content.decode()
    assert not Coupon.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"duration": "once", "duration_invoices": "3"}, "Only a repeating coupon"),
        ({"duration": "forever", "duration_invoices": "3"}, "Only a repeating coupon"),
        ({"duration_invoices": "3"}, "Only a repeating coupon"),  # blank duration: once
        ({"duration": "repeating", "duration_invoices": "0"}, "Required when duration"),
    ],
)
def test_admin_form_refuses_invoices_that_do_not_match(admin_client, overrides, message):
    response = admin_client.post(ADD_COUPON, coupon_form(**overrides))

    assert response.status_code == 200
    errors = form_errors(response)
    assert list(errors) == ["duration_invoices"]
    assert errors["duration_invoices"][0].startswith(message)
    assert not Coupon.objects.exists()


def test_admin_form_saves_each_duration(admin_client):
    for code, overrides in {
        "ONE": {},
        "THREE": {"duration": "repeating", "duration_invoices": "3"},
        "ALL": {"duration": "forever"},
    }.items():
        response = admin_client.post(ADD_COUPON, coupon_form(code=code, **overrides))
        assert response.status_code == 302, form_errors(response)

    stored = {c.code: (c.duration, c.duration_invoices) for c in Coupon.objects.all()}
    assert stored == {"ONE": ("once", None), "THREE": ("repeating", 3), "ALL": ("forever", None)}


def test_admin_change_form_shows_and_changes_the_duration(admin_client):
    coupon = CouponFactory(code="MONTHS", percent_bp=2000)
    url = reverse("admin:coupons_coupon_change", args=[coupon.pk])
    page = admin_client.get(url)
    assert {"duration", "duration_invoices"} <= set(page.context["adminform"].form.fields)

    refused = admin_client.post(url, change_form(coupon, duration="repeating"))
    saved = admin_client.post(url, change_form(coupon, duration="repeating", duration_invoices="3"))

    assert form_errors(refused) == {
        "duration_invoices": ["Required when duration is repeating (at least 1)."]
    }
    assert saved.status_code == 302, form_errors(saved)
    coupon.refresh_from_db()
    assert (coupon.duration, coupon.duration_invoices) == ("repeating", 3)
