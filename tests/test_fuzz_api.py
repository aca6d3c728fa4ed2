"""API fuzzing (issue "Reliability harness", part 1; issue 11): schemathesis against the
served schema.

Every operation in `/api/schema/` is a test case (new endpoints are covered without
touching this file). For each operation schemathesis runs its examples, coverage and
fuzzing phases with valid and invalid inputs and applies every check it has: no 5xx,
status code documented, body matches the documented shape, content type documented,
response headers documented, schema-violating data rejected, missing required header,
unsupported method, Allow header, ignored auth, use after free, resource availability,
object-level authorization.

Then the stateful phase: sequences of calls chained by OpenAPI links, so one call works
on what an earlier one created (create a coupon, then PATCH, read or bulk-generate it).
drf-spectacular has no way to declare links; schemathesis infers most of them from the
schema (create -> get/patch by `code`, orders confirm -> release ...), and `LINKS` below
adds the ones it cannot infer (a campaign or a batch by the id its create returned, the
order an apply reserved). A 500 that needs such a history (a coupon stored with a validity
in year 10000 in UTC, after which every PATCH of it failed) is only found this way.

One check is left out: `positive_data_acceptance` (every schema-valid request must get a
2xx). The contract (API.md) answers `400` to input JSON Schema cannot describe: a
`subtotal` that is not the items' sum, `user_id` naming another customer than
`customer.id`, neither `coupon_code` nor `coupon_codes`, a currency code that is three
letters but not ISO 4217, more decimals than the currency has, a validity window that
ends before it starts, a PATCH whose merged coupon is not a valid definition. Those are
deliberate 400s, not server bugs; every other check runs on every response.

Budgets (environment): `FUZZ_EXAMPLES` generated examples per operation (on top of the
coverage phase's boundary cases, which do not depend on it), `FUZZ_STATEFUL_EXAMPLES`
scenarios of up to `FUZZ_STATEFUL_STEPS` calls. `make test` runs 10, and 15 scenarios of
6 calls; `make fuzz` 100 per operation and 300 scenarios of 10 calls. Each scenario starts
from the same data, so a failure replays exactly. The inputs are derandomized (the same
every run); `FUZZ_RANDOM=1` draws new ones. `REGRESSIONS` replays what the outside
fuzzing found on every run, whatever the budget.
"""

from __future__ import annotations

import contextlib
import os

import hypothesis
import pytest
import schemathesis
from django.apps import apps as django_apps
from django.core.cache import cache
from django.core.management.color import no_style
from django.core.wsgi import get_wsgi_application
from django.db import connection, transaction
from django.test.utils import setup_databases, teardown_databases
from hypothesis import HealthCheck
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.models import ApiKey, IdempotencyRecord
from coupons import promotions, selectors
from coupons.tests.factories import CouponFactory

# make test's budget (about a minute, most of it the coverage phase); make fuzz's is larger.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
FUZZ_STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))
FUZZ_STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "6"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM") != "1"
EXCLUDED_CHECKS = [positive_data_acceptance]  # see the module docstring
# Known codes and orders the generated requests may use, so the success paths (a valid
# coupon, an order with reservations) are exercised, not only the rejections.
KNOWN_CODES = ("FUZZ10", "FUZZFIXED", "FUZZSHIP")
KNOWN_ORDERS = ("fuzz-order-1", "fuzz-order-2")

# Links schemathesis does not infer: (operation, status) -> {name: link}.
_CAMPAIGN = {"path.campaign_id": "$response.body#/id"}
_BATCH = {"path.batch_id": "$response.body#/batch_id"}
_ORDER = {"path.order_id": "$response.body#/order_id"}
LINKS = {
    ("/api/v1/admin/campaigns", "post", "201"): {
        "GetCampaign": {"operationId": "campaigns_get", "parameters": _CAMPAIGN},
        "ClaimCampaign": {"operationId": "campaigns_claim", "parameters": _CAMPAIGN},
    },
    ("/api/v1/admin/coupons/bulk-generate", "post", "202"): {
        "GetBatch": {"operationId": "admin_code_batches_get", "parameters": _BATCH},
        "GetBatchCodes": {"operationId": "admin_code_batches_codes_csv", "parameters": _BATCH},
    },
    ("/api/v1/coupons/apply", "post", "200"): {
        "ConfirmOrder": {"operationId": "orders_confirm", "parameters": _ORDER},
        "ReleaseOrder": {"operationId": "orders_release", "parameters": _ORDER},
        "ReturnOrder": {"operationId": "orders_return", "parameters": _ORDER},
    },
}


# The time fields (coupons.api.admin_serializers.ValidityField) are plain strings in the
# served schema; described here as what they accept, an ISO date or date-time, so the
# generator makes real times, extreme years and offsets included, not random text.
TIME_FIELDS = {"valid_from", "valid_to", "starts_at", "ends_at", "expires_at"}
TIME_FORMATS = [{"format": "date-time"}, {"format": "date"}]  # null passes both


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """Add LINKS and TIME_FORMATS to the served schema as this module loads it (and fail
    loudly when an operation they name has gone, rather than quietly testing less)."""
    operation_ids = {
        op.get("operationId")
        for item in raw_schema["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
    }
    for (path, method, status), links in LINKS.items():
        response = raw_schema["paths"][path][method]["responses"][status]
        assert {link["operationId"] for link in links.values()} <= operation_ids, links
        response.setdefault("links", {}).update(links)
    described = 0
    for component in raw_schema["components"]["schemas"].values():
        for name, prop in component.get("properties", {}).items():
            if (
                name in TIME_FIELDS
                and prop.get("type") == "string"
                and "format" not in prop
                and not prop.get("readOnly")
            ):
                prop["anyOf"] = TIME_FORMATS
                described += 1
    assert described >= len(TIME_FIELDS), described  # the input serializers' time fields


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

_CARTS = st.sampled_from(
    [
        {
            "currency": "USD",
            "items": [
                {"sku": "SKU-1", "category": "electronics", "unit_price": "50.00", "quantity": 3}
            ],
        },
        {
            "currency": "USD",
            "shipping": "7.99",
            "subtotal": "20.50",
            "items": [{"sku": "A", "unit_price": "10.25", "quantity": 2}],
        },
    ]
)


def _is_positive(case) -> bool:
    return case.meta is not None and not case.meta.generation.mode.is_negative


def _is_stateful(case) -> bool:
    return case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL


def _use_known(case, use: bool, code: str, order_id: str, cart: dict, key: str, currency: str):
    """Point a valid generated request at data that exists (codes, orders, a currency),
    with a fresh Idempotency-Key (generated keys repeat, so most mutations would be
    replays). In the stateful phase the path comes from a link (what an earlier call
    returned) and stays."""
    if not use:
        return case
    params = case.path_parameters or {}
    if "order_id" in params and not _is_stateful(case):
        params["order_id"] = order_id
    if "code" in params and not _is_stateful(case):
        params["code"] = code
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = key
    body = case.body
    # Coupon definitions (create, PATCH, a campaign's discount): a random three-letter
    # currency is almost never ISO 4217, and a create needs coupon_id or code (the schema
    # cannot say "one of"); either would hide every other check behind a 400.
    for definition in (body, body.get("discount")) if isinstance(body, dict) else ():
        if isinstance(definition, dict) and "currency" in definition:
            definition["currency"] = currency
    if case.operation.path == "/api/v1/admin/coupons" and isinstance(body, dict):
        body.pop("coupon_id", None)
        body["code"] = f"FZ{key[:8]}"
    if isinstance(body, dict) and "cart" in body:
        body["coupon_code"] = code
        body.pop("coupon_codes", None)
        body["cart"] = dict(cart)
        if "order_id" in body:  # a new order: the known ones already hold their codes
            body["order_id"] = f"fuzz-{key}"
        if isinstance(body.get("customer"), dict) and "user_id" in body:
            body["user_id"] = body["customer"]["id"]
    return case


@schema.hook
def flatmap_case(ctx, case):
    """Most valid requests use known coupon codes, orders, currencies and a valid cart, so
    the success paths are fuzzed too (random codes and currencies almost never exist)."""
    if not _is_positive(case):
        return st.just(case)
    return st.builds(
        lambda *args: _use_known(case, *args),
        st.sampled_from([True, True, False]),
        st.sampled_from(KNOWN_CODES),
        st.sampled_from(KNOWN_ORDERS),
        _CARTS,
        st.uuids().map(str),
        st.sampled_from(["USD", "eur", "JPY", "KWD"]),
    )


def _seed(headers: dict[str, str]) -> None:
    """A few live coupons and two orders holding reservations."""
    CouponFactory(code=KNOWN_CODES[0], stackable=True)
    CouponFactory(
        code=KNOWN_CODES[1],
        type="fixed",
        percent_bp=None,
        amount_minor=500,
        currency="USD",
        stackable=True,
    )
    CouponFactory(code=KNOWN_CODES[2], type="free_shipping", percent_bp=None, stackable=True)
    # Auto promotions, so evaluate/validate/apply combine codes with them.
    CouponFactory(
        code="FUZZAUTO5", auto_apply=True, percent_bp=500, stackable=True, stack_group="auto"
    )
    CouponFactory(
        code="FUZZAUTOSHIP",
        auto_apply=True,
        type="free_shipping",
        percent_bp=None,
        eligible_categories=["electronics"],
        max_uses_total=50,
        stackable=True,
    )
    client = APIClient()
    for n, order_id in enumerate(KNOWN_ORDERS):
        body = {
            "coupon_code": KNOWN_CODES[n],
            "user_id": f"fuzz-{n}",
            "order_id": order_id,
            "cart": {
                "currency": "USD",
                "items": [
                    {
                        "sku": "SKU-1",
                        "category": "electronics",
                        "unit_price": "50.00",
                        "quantity": 3,
                    }
                ],
            },
        }
        response = client.post(
            "/api/v1/coupons/apply",
            body,
            format="json",
            HTTP_AUTHORIZATION=headers["Authorization"],
            HTTP_IDEMPOTENCY_KEY=f"fuzz-setup-{n}",
        )
        assert response.status_code == 200, response.content


# What the API writes, emptied before each stateful scenario (API keys stay).
RESET_APPS = ("coupons", "codebatches", "campaigns", "abuse", "analytics")


def _reset() -> None:
    """Every scenario starts from the same data (ids included), so hypothesis can replay a
    failing one exactly; carried-over state would make it report a flaky strategy instead
    of the failure."""
    models = [
        m
        for label in RESET_APPS
        for m in django_apps.get_app_config(label).get_models(include_auto_created=True)
    ]
    models.append(IdempotencyRecord)
    # DELETE, not TRUNCATE (ten times slower on small tables); the foreign keys are
    # deferred, so the order does not matter inside one transaction.
    with transaction.atomic(), connection.cursor() as cursor:
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a model's own table name
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)
    cache.clear()
    selectors._local.clear()
    promotions.reset()


@pytest.fixture(scope="module")
def fuzz_auth(django_db_setup, django_db_blocker) -> dict[str, str]:
    """Committed data for the WSGI app, once for the module (a transactional_db flush
    around each of the twenty tests cost half a minute): a key with both scopes, a few
    live coupons and two orders. The operations share what they create, as they would
    on a server; afterwards the database is as the module found it."""
    with django_db_blocker.unblock(), _test_database():
        _reset()
        _, key = ApiKey.objects.create_key(name="fuzz", scopes=["storefront", "admin"])
        headers = {"Authorization": f"Api-Key {key}"}
        _seed(headers)
        yield headers
        _reset()  # as it was: what the API wrote is gone, the migrations' data stays
        ApiKey.objects.filter(name="fuzz").delete()


@contextlib.contextmanager
def _test_database():
    """pytest-django creates the test database only when a selected test is marked for
    it, and these tests share the fixture above instead: when none is (this module run
    alone), create it here as django_db_setup would. Never touch another database."""
    test_name = connection.creation._get_test_db_name()
    config = None
    if connection.settings_dict["NAME"] != test_name:
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    assert connection.settings_dict["NAME"] == test_name, connection.settings_dict["NAME"]
    try:
        yield
    finally:
        if config is not None:
            teardown_databases(config, verbosity=0)


def _fresh(headers: dict[str, str]) -> None:
    _reset()
    _seed(headers)


SETTINGS = {"derandomize": DERANDOMIZE, "deadline": None, "database": None}


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    **SETTINGS,
)
def test_api_conforms_to_schema(case, fuzz_auth):
    case.call_and_validate(headers=fuzz_auth, excluded_checks=EXCLUDED_CHECKS)


def test_api_workflows(fuzz_auth):
    """The stateful phase: scenarios of linked calls, every check after every call."""
    machine = schema.as_state_machine()
    # the inferred links and LINKS (if inference ever stopped, this would test little)
    assert schema.statistic.transitions.total > sum(map(len, LINKS.values()))

    class Workflow(machine):
        def setup(self):
            _fresh(fuzz_auth)

        def get_call_kwargs(self, case):
            return {"headers": fuzz_auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=EXCLUDED_CHECKS,
                headers=fuzz_auth,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=FUZZ_STATEFUL_EXAMPLES,
            stateful_step_count=FUZZ_STATEFUL_STEPS,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(HealthCheck),
            **SETTINGS,
        )
    )


# --- what the outside fuzzing found (issue 11): replayed on every run ---------------------

COUPONS = "/api/v1/admin/coupons"
COUPON = "/api/v1/admin/coupons/{code}"
BULK = "/api/v1/admin/coupons/bulk-generate"
YEAR_10000 = "9999-12-31T23:59:59-10:00"  # in UTC: stored by PostgreSQL, unreadable after
KNOWN = {"code": KNOWN_CODES[0]}
REGRESSIONS = [
    # (method, path, path parameters, body, status): each runs with every check
    ("PATCH", COUPON, KNOWN, {"priority": -152}, 200),
    ("PATCH", COUPON, KNOWN, {"bogo": {"buy": 413}}, 400),
    ("PATCH", COUPON, KNOWN, {"tiers": [{"threshold": "10.00"}]}, 400),
    ("PATCH", COUPON, KNOWN, {"conditions": {"valid_to": YEAR_10000}}, 400),
    ("PATCH", COUPON, KNOWN, {"conditions": {"max_uses_total": 2**31}}, 400),
    # the history behind {"priority": -152}: a coupon stored with such a validity (201),
    # after which every PATCH and GET of it was a 500
    (
        "POST",
        COUPONS,
        {},
        {
            "code": "FUZZY10K",
            "type": "percentage",
            "value": 10,
            "conditions": {"valid_to": YEAR_10000},
        },
        400,
    ),
    ("PATCH", COUPON, {"code": "FUZZY10K"}, {"priority": -152}, 404),
    (
        "POST",
        COUPONS,
        {},
        {
            "code": "FUZZBIG",
            "type": "percentage",
            "value": 10,
            "conditions": {"max_uses_total": 2**31},
        },
        400,
    ),
    ("POST", COUPONS, {}, {"code": "FUZZBOGO", "type": "bogo", "bogo": {"buy": 413}}, 400),
    (
        "POST",
        "/api/v1/admin/campaigns",
        {},
        {
            "name": "F",
            "inventory": 1,
            "starts_at": "2030-01-01",
            "ends_at": YEAR_10000,
            "discount": {"type": "percentage", "value": 10},
        },
        400,
    ),
    (
        "POST",
        BULK,
        {},
        {"coupon": KNOWN_CODES[0], "prefix": "F", "count": 1, "max_uses_per_code": 2**31},
        400,
    ),
    (
        "POST",
        BULK,
        {},
        {"coupon": KNOWN_CODES[0], "prefix": "F", "count": 1, "expires_at": YEAR_10000},
        400,
    ),
]


def test_regressions(fuzz_auth):
    _fresh(fuzz_auth)
    for n, (method, path, params, body, expected) in enumerate(REGRESSIONS):
        case = schema[path][method].Case(
            path_parameters=params,
            body=body,
            media_type="application/json",
            headers={"Idempotency-Key": f"regression-{n}"},
        )
        response = case.call(headers=fuzz_auth)
        assert response.status_code == expected, (method, path, body, response.text)
        case.validate_response(response, excluded_checks=EXCLUDED_CHECKS, headers=fuzz_auth)
