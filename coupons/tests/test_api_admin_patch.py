"""Bad input to the coupon admin API is a 400 with field errors, never a 500 (issue 11).

PATCH validates as create does: the same serializer fields (a nested bogo or tier is
replaced whole, so it needs all its fields), then the merged coupon goes through
coupon_check. Every numeric field stays inside its column on both (a value the column
cannot hold would be a database error), and a check constraint the validation missed
is still a 400, never a 500 (and on create not a "coupon exists" 409)."""

import datetime as dt

import pytest

from coupons import services
from coupons.models import Coupon
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/coupons"
BIG = (2**31, 2**63, 10**30)  # beyond an integer column, beyond bigint, beyond anything
BIG_MONEY = (2**63, 10**30, "1e20")  # money: up to 10**13 minor units (core.money)

BASE = {
    "percentage": {"type": "percentage", "value": 10},
    "fixed": {"type": "fixed", "value": "5.00"},
    "bogo": {"type": "bogo", "bogo": {"buy": 1, "get": 1}},
    "tiered": {"type": "tiered", "tiers": [{"threshold": "10.00", "discount": "1.00"}]},
}


def _with(path: tuple[str, ...], value, base: dict | None = None) -> dict:
    """`base` with `value` at `path` (("bogo", "buy") -> {"bogo": {..., "buy": value}})."""
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (base or {}).items()}
    node = body
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value
    return body


def _names_field(fields: dict, path: tuple[str, ...]) -> bool:
    """The error is on the field: nested as sent, or by its own name (the names
    coupon_check and the money parsing report on, e.g. "min_cart_value")."""
    return path[0] in fields or path[-1] in fields


def _errors(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content)
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["fields"], error
    return error["fields"]


# (kind of coupon, path of the field, in range, out of range)
NUMERIC = [
    ("percentage", ("priority",), (-1000, 0, 1000), (-1001, 1001, -(2**31) - 1, *BIG)),
    ("percentage", ("leak_threshold",), (1, 10_000_000), (0, -1, 10_000_001, *BIG)),
    ("percentage", ("conditions", "max_uses_total"), (1, 2**31 - 1), (0, -1, *BIG)),
    ("percentage", ("conditions", "max_uses_per_user"), (1, 2**31 - 1), (0, -1, *BIG)),
    ("bogo", ("bogo", "buy"), (1, 1000), (0, -1, 1001, 32768, *BIG)),
    ("bogo", ("bogo", "get"), (1, 1000), (0, -1, 1001, 32768, *BIG)),
    ("bogo", ("bogo", "percent_off"), ("0.01", 100), (-1, 0, "100.01", 101, *BIG)),
    ("percentage", ("value",), ("0.01", 100), (-1, 0, "100.01", "0.001", *BIG)),
    (
        "fixed",
        ("value",),
        ("0.01", "100000000000.00"),
        (-1, 0, "100000000000.01", "0.001", *BIG_MONEY),
    ),
    ("fixed", ("discount_cap",), (0, "100000000000.00"), ("-0.01", "100000000000.01", *BIG_MONEY)),
    (
        "fixed",
        ("budget",),
        ("0.01", "100000000000.00"),
        (0, "-0.01", "100000000000.01", *BIG_MONEY),
    ),
    (
        "fixed",
        ("conditions", "min_cart_value"),
        (0, "100000000000.00"),
        ("-0.01", "100000000000.01", *BIG_MONEY),
    ),
]
IN_RANGE = [(kind, path, v) for kind, path, ok, _ in NUMERIC for v in ok]
OUT_OF_RANGE = [(kind, path, v) for kind, path, _, bad in NUMERIC for v in bad]


def _ids(case) -> str:
    kind, path, value = case
    return f"{kind}-{'.'.join(path)}={value}"


# --- the bodies schemathesis found -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": -152}, None),  # in range: a 200
        ({"bogo": {"buy": 413}}, "bogo"),  # half a bogo: get is required, as on create
        ({"bogo": {"get": 2}}, "bogo"),
        ({"bogo": {}}, "bogo"),
        ({"tiers": [{"threshold": "10.00"}]}, "tiers"),
        ({"tiers": [{}]}, "tiers"),
    ],
)
@pytest.mark.parametrize("kind", ["percentage", "bogo", "tiered"])
def test_patch_found_by_fuzzing(admin_api, kind, body, field):
    # given a coupon created through the API
    created = admin_api.post(URL, {"code": "FUZZED", **BASE[kind]}, format="json")
    assert created.status_code == 201, created.content
    # when
    response = admin_api.patch(f"{URL}/FUZZED", body, format="json")
    # then
    if field is None:
        assert response.status_code == 200, response.content
        assert response.json()["priority"] == body["priority"]
    else:
        assert field in _errors(response)


def test_patch_half_a_bogo_keeps_the_stored_one(admin_api):
    admin_api.post(
        URL, {"code": "B2G1", "type": "bogo", "bogo": {"buy": 2, "get": 1}}, format="json"
    )
    response = admin_api.patch(f"{URL}/B2G1", {"bogo": {"buy": 413}}, format="json")
    assert _errors(response) == {"bogo": {"get": ["This field is required."]}}
    coupon = Coupon.objects.get(code="B2G1")
    assert (coupon.bogo_buy, coupon.bogo_get, coupon.version) == (2, 1, 1)


def test_patch_a_whole_bogo_gets_the_create_defaults(admin_api):
    admin_api.post(
        URL,
        {"code": "B2G1", "type": "bogo", "bogo": {"buy": 2, "get": 1, "percent_off": 50}},
        format="json",
    )
    response = admin_api.patch(f"{URL}/B2G1", {"bogo": {"buy": 3, "get": 1}}, format="json")
    assert response.status_code == 200, response.content
    # percent_off left out means 100, as on create (not "keep the old 50")
    assert response.json()["bogo"] == {"buy": 3, "get": 1, "percent_off": "100"}


def test_create_half_a_bogo(admin_api):
    response = admin_api.post(
        URL, {"code": "B", "type": "bogo", "bogo": {"buy": 413}}, format="json"
    )
    assert _errors(response) == {"bogo": {"get": ["This field is required."]}}


def test_patch_conditions_still_merge(admin_api):
    admin_api.post(
        URL,
        {
            "code": "M",
            "type": "percentage",
            "value": 10,
            "conditions": {"max_uses_total": 5, "max_uses_per_user": 1},
        },
        format="json",
    )
    response = admin_api.patch(f"{URL}/M", {"conditions": {"max_uses_total": 7}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["conditions"]["max_uses_total"] == 7
    assert response.json()["conditions"]["max_uses_per_user"] == 1


# --- every numeric field, at and beyond its limits ---------------------------------------


@pytest.mark.parametrize("case", IN_RANGE, ids=_ids)
def test_create_in_range(admin_api, case):
    kind, path, value = case
    response = admin_api.post(
        URL, _with(path, value, {"code": "EDGE", **BASE[kind]}), format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=_ids)
def test_create_out_of_range(admin_api, case):
    kind, path, value = case
    response = admin_api.post(
        URL, _with(path, value, {"code": "EDGE", **BASE[kind]}), format="json"
    )
    assert _names_field(_errors(response), path)
    assert not Coupon.objects.filter(code="EDGE").exists()


@pytest.mark.parametrize("case", IN_RANGE, ids=_ids)
def test_patch_in_range(admin_api, case):
    kind, path, value = case
    admin_api.post(URL, {"code": "EDGE", **BASE[kind]}, format="json")
    base = {"bogo": BASE["bogo"]["bogo"]} if path[0] == "bogo" else {}
    response = admin_api.patch(f"{URL}/EDGE", _with(path, value, base), format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=_ids)
def test_patch_out_of_range(admin_api, case):
    kind, path, value = case
    admin_api.post(URL, {"code": "EDGE", **BASE[kind]}, format="json")
    base = {"bogo": BASE["bogo"]["bogo"]} if path[0] == "bogo" else {}
    response = admin_api.patch(f"{URL}/EDGE", _with(path, value, base), format="json")
    assert _names_field(_errors(response), path)
    assert Coupon.objects.get(code="EDGE").version == 1  # nothing saved


@pytest.mark.parametrize("path", [("tiers", 0, "threshold"), ("tiers", 0, "discount")])
@pytest.mark.parametrize("value", ["-0.01", "100000000000.01", *BIG_MONEY])
def test_tier_amounts_out_of_range(admin_api, path, value):
    tier = {"threshold": "10.00", "discount": "1.00", path[2]: value}
    created = admin_api.post(URL, {"code": "T", "type": "tiered", "tiers": [tier]}, format="json")
    assert "tiers" in _errors(created)
    admin_api.post(URL, {"code": "T", **BASE["tiered"]}, format="json")
    patched = admin_api.patch(f"{URL}/T", {"tiers": [tier]}, format="json")
    assert "tiers" in _errors(patched)


# --- times and texts the columns cannot hold ---------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:59:59-10:00",  # year 10000 in UTC: stored, then unreadable
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31",  # past the last day every time zone can show
        "1969-12-31T23:59:59Z",
    ],
)
@pytest.mark.parametrize("name", ["valid_from", "valid_to"])
def test_validity_out_of_range(admin_api, name, moment):
    created = admin_api.post(
        URL,
        {"code": "W", "type": "percentage", "value": 10, "conditions": {name: moment}},
        format="json",
    )
    assert _errors(created) == {"conditions": {name: ["Enter a time between 1970 and 9999."]}}
    admin_api.post(URL, {"code": "W", "type": "percentage", "value": 10}, format="json")
    patched = admin_api.patch(f"{URL}/W", {"conditions": {name: moment}}, format="json")
    assert "conditions" in _errors(patched)
    # and the coupon can still be read and changed
    assert admin_api.get(f"{URL}/W").status_code == 200
    assert admin_api.patch(f"{URL}/W", {"priority": -152}, format="json").status_code == 200


def test_validity_at_the_edges(admin_api):
    response = admin_api.post(
        URL,
        {
            "code": "W",
            "type": "percentage",
            "value": 10,
            "conditions": {"valid_from": "1970-01-01T00:00:00Z", "valid_to": "9999-12-30"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert admin_api.patch(f"{URL}/W", {"priority": -152}, format="json").status_code == 200


@pytest.mark.parametrize("offset", ["-17:01", "+23:59", "-23:59", "+15:59"])
def test_any_offset_is_the_same_instant(admin_api, offset):
    # PostgreSQL refuses offsets past 15:59 (a 500, found by the stateful fuzzing)
    moment = f"2030-06-01T12:00:00{offset}"
    response = admin_api.post(
        URL,
        {"code": "TZ", "type": "percentage", "value": 10, "conditions": {"valid_from": moment}},
        format="json",
    )
    assert response.status_code == 201, response.content
    expected = dt.datetime.fromisoformat(moment)
    assert Coupon.objects.get(code="TZ").valid_from == expected
    patched = admin_api.patch(
        f"{URL}/TZ", {"conditions": {"valid_to": moment.replace("2030", "2031")}}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert Coupon.objects.get(code="TZ").valid_to == expected.replace(year=2031)


def test_segment_longer_than_its_column(admin_api):
    body = {
        "code": "S",
        "type": "percentage",
        "value": 10,
        "conditions": {"eligible_user_segments": ["s" * 65]},
    }
    assert "conditions" in _errors(admin_api.post(URL, body, format="json"))
    body["conditions"]["eligible_user_segments"] = ["s" * 64]
    assert admin_api.post(URL, body, format="json").status_code == 201


# --- the last line of defence: a check constraint the validation missed ------------------


@pytest.fixture
def no_business_checks(monkeypatch):
    """coupon_check switched off: only the database's check constraints remain."""
    monkeypatch.setattr(services, "coupon_check", lambda coupon: None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 150}, "value"),  # percent_bp > 10000
        ({"conditions": {"valid_from": "2026-05-01", "valid_to": "2026-04-01"}}, "valid_to"),
    ],
)
def test_check_constraint_on_patch_is_a_400(admin_api, no_business_checks, body, field):
    CouponFactory(code="GUARD")
    response = admin_api.patch(f"{URL}/GUARD", body, format="json")
    assert _errors(response) == {field: ["This value is not allowed here."]}


def test_check_constraint_on_create_is_a_400_not_exists(admin_api, no_business_checks):
    response = admin_api.post(
        URL, {"code": "GUARD", "type": "percentage", "value": 150}, format="json"
    )
    assert _errors(response) == {"value": ["This value is not allowed here."]}
    assert not Coupon.objects.filter(code="GUARD").exists()


def test_max_uses_below_uses_on_patch_is_a_400(admin_api, no_business_checks):
    CouponFactory(code="USED", uses=5, max_uses_total=10)
    response = admin_api.patch(f"{URL}/USED", {"conditions": {"max_uses_total": 3}}, format="json")
    assert _errors(response) == {"max_uses_total": ["This value is not allowed here."]}


def test_a_value_the_column_cannot_hold_is_a_400(admin_api, monkeypatch):
    # given validation that lets an out-of-range priority through
    monkeypatch.setattr(
        "coupons.api.admin_serializers.definition_to_fields",
        lambda data, instance=None: {"priority": 2**40},
    )
    CouponFactory(code="WIDE")
    response = admin_api.patch(f"{URL}/WIDE", {"priority": 1}, format="json")
    assert _errors(response) == {"non_field_errors": ["A value is out of range or too long."]}


def test_existing_code_is_still_a_409(admin_api):
    CouponFactory(code="TAKEN")
    response = admin_api.post(
        URL, {"code": "TAKEN", "type": "percentage", "value": 10}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "coupon_exists"
