"""The admin API for bulk generation: 202 and the batch, Idempotency-Key replays, clear
400s, status, the streamed CSV, customer-targeted codes that only their customer can use,
and generated codes typed the way people type them."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.utils import timezone

from core import idempotency
from core.models import ApiKey, IdempotencyRecord
from coupons.codebatches import services
from coupons.codebatches.models import CodeBatch
from coupons.codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code
from coupons.tests.factories import CouponFactory
from tests.race import api_key, client_for, race, unexpected
from tests.support import cart

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/coupons/bulk-generate"
FORMAT = r"^{prefix}[0-9A-HJKMNP-TV-Z]{{12}}$"
CART_150 = cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99", subtotal="150.00")


@pytest.fixture
def spring(db):
    return CouponFactory(code="SPRING10")


def generate(client, body, key=None):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def test_bulk_generate_202_then_done(admin_api, spring, django_capture_on_commit_callbacks):
    # when a batch is requested (the task runs eagerly on commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = generate(
            admin_api, {"coupon": "spring10", "prefix": "spr", "count": 500, "max_uses_per_code": 1}
        )
    # then 202 with the batch, which is done with exactly 500 codes
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "generating"
    assert body["requested"] == 500
    assert body["generated"] == 0
    status = admin_api.get(f"/api/v1/admin/code-batches/{body['batch_id']}").json()
    assert status["status"] == "done"
    assert status["generated"] == 500
    assert status["coupon"] == "SPRING10"
    assert status["prefix"] == "SPR"
    assert status["finished_at"]
    assert status["error"] == ""
    codes = Code.objects.filter(batch_id=body["batch_id"])
    assert codes.count() == 500
    assert codes.filter(code__regex=FORMAT.format(prefix="SPR"), coupon=spring).count() == 500


def test_task_is_queued_only_on_commit(admin_api, spring, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = generate(admin_api, {"coupon": "SPRING10", "prefix": "SPR", "count": 5})
    assert response.status_code == 202
    assert len(callbacks) == 1
    assert not Code.objects.filter(batch_id=response.json()["batch_id"]).exists()


def test_same_idempotency_key_never_starts_a_second_batch(
    admin_api, spring, django_capture_on_commit_callbacks
):
    body = {"coupon": "SPRING10", "prefix": "SPR", "count": 10}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = generate(admin_api, body, key="batch-key-1")
        replay = generate(admin_api, body, key="batch-key-1")
    assert first.status_code == replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["batch_id"] == first.json()["batch_id"]
    assert CodeBatch.objects.count() == 1
    assert len(callbacks) == 1
    assert Code.objects.filter(batch__isnull=False).count() == 10
    # the same key with another body is a conflict
    other = generate(admin_api, {**body, "count": 11}, key="batch-key-1")
    assert other.status_code == 409


def test_idempotency_key_is_required(admin_api, spring):
    response = admin_api.post(
        URL, {"coupon": "SPRING10", "prefix": "SPR", "count": 1}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"count": 0}, "count", "greater than or equal to 1"),
        ({"count": 1_000_001}, "count", "less than or equal to 1000000"),
        ({"prefix": "PROMO"}, "prefix", "I, L or O"),
        ({"prefix": "IL"}, "prefix", "found I, L"),
        ({"prefix": "AB-C"}, "prefix", "'-'"),
        ({"prefix": "A" * 21}, "prefix", "no more than 20"),
        ({"prefix": ""}, "prefix", "blank"),
        ({"code_length": 11}, "code_length", "greater than or equal to 12"),
        ({"code_length": 25}, "code_length", "less than or equal to 24"),
        ({"max_uses_per_code": 0}, "max_uses_per_code", "greater than or equal to 1"),
        ({"expires_at": "2001-01-01"}, "expires_at", "past"),
        ({"expires_at": "soon"}, "expires_at", "ISO 8601"),
        ({"count": None}, "count", "null"),
        ({"customer_ids": ["a", "b"], "count": 3}, "count", "their number"),
        ({"customer_ids": ["a", "a"]}, "customer_ids", "at most once"),
        ({"customer_ids": []}, "customer_ids", "empty"),
    ],
)
def test_bad_input_is_a_clear_400(admin_api, spring, body, field, words):
    full = {"coupon": "SPRING10", "prefix": "SPR", "count": 10, **body}
    response = generate(admin_api, full)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert words in " ".join(error["fields"][field]), error
    assert not CodeBatch.objects.exists()


def test_api_md_example_body_is_accepted(admin_api, django_capture_on_commit_callbacks):
    # API.md's example: prefix SUMMER (U is allowed: nothing rewrites it on input)
    CouponFactory(code="SUMMER")
    with django_capture_on_commit_callbacks(execute=True):
        response = generate(
            admin_api, {"coupon": "SUMMER", "prefix": "SUMMER", "count": 5, "max_uses_per_code": 1}
        )
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "generating"
    codes = list(Code.objects.filter(batch__isnull=False).values_list("code", flat=True))
    assert len(codes) == 5
    assert all(c.startswith("SUMMER") and len(c) == 18 for c in codes)


def test_count_required_without_customers(admin_api, spring):
    response = generate(admin_api, {"coupon": "SPRING10", "prefix": "SPR"})
    assert response.status_code == 400
    assert "count" in response.json()["error"]["fields"]


def test_unknown_coupon_is_404(admin_api):
    response = generate(admin_api, {"coupon": "NOPE", "prefix": "SPR", "count": 1})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "coupon_not_found"


def test_needs_the_admin_scope(storefront, spring):
    assert (
        generate(storefront, {"coupon": "SPRING10", "prefix": "SPR", "count": 1}).status_code == 403
    )
    batch = CodeBatchFactory(coupon=spring)
    assert storefront.get(f"/api/v1/admin/code-batches/{batch.pk}").status_code == 403
    assert storefront.get(f"/api/v1/admin/code-batches/{batch.pk}/codes.csv").status_code == 403


def test_status_of_a_running_and_an_unknown_batch(admin_api, spring):
    batch = CodeBatchFactory(coupon=spring, requested=1000, generated=400)
    body = admin_api.get(f"/api/v1/admin/code-batches/{batch.pk}").json()
    assert (body["status"], body["requested"], body["generated"]) == ("generating", 1000, 400)
    assert body["finished_at"] is None
    missing = admin_api.get(f"/api/v1/admin/code-batches/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "batch_not_found"


def test_codes_csv_streams_every_code(admin_api, spring, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = generate(
            admin_api,
            {
                "coupon": "SPRING10",
                "prefix": "CSV",
                "count": 12_345,
                "max_uses_per_code": 3,
                "expires_at": "2099-12-31",
            },
        ).json()["batch_id"]
    response = admin_api.get(
        f"/api/v1/admin/code-batches/{batch_id}/codes.csv", HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["code", "max_uses", "expires_at", "customer_id"]
    assert len(rows) == 12_346
    assert {r[0] for r in rows[1:]} == set(
        Code.objects.filter(batch_id=batch_id).values_list("code", flat=True)
    )
    assert {(r[1], r[2][:10], r[3]) for r in rows[1:]} == {("3", "2099-12-31", "")}


def test_customer_targeted_codes_bind_one_code_per_customer(
    admin_api, storefront, spring, django_capture_on_commit_callbacks
):
    # given a targeted batch for three customers (one already known to the engine)
    from coupons.tests.factories import CustomerFactory

    CustomerFactory(external_id="u-known")
    with django_capture_on_commit_callbacks(execute=True):
        response = generate(
            admin_api,
            {
                "coupon": "SPRING10",
                "prefix": "VP",
                "customer_ids": ["u-known", "u-new-1", "u-new-2"],
            },
        )
    assert response.status_code == 202
    assert response.json()["requested"] == 3
    codes = {
        c.customer.external_id: c.code
        for c in Code.objects.filter(batch_id=response.json()["batch_id"]).select_related(
            "customer"
        )
    }
    # then each customer holds exactly one code
    assert set(codes) == {"u-known", "u-new-1", "u-new-2"}
    assert len(set(codes.values())) == 3

    def check(code, user):
        return storefront.post(
            "/api/v1/coupons/validate",
            {"coupon_code": code, "user_id": user, "cart": CART_150},
            format="json",
        ).json()

    # and a code works for its customer only
    assert check(codes["u-new-1"], "u-new-1")["valid"] is True
    assert check(codes["u-new-1"], "u-new-2")["reason"] == "code_bound_to_other_customer"
    # the CSV names the customer of each code
    csv_rows = (
        b"".join(
            admin_api.get(
                f"/api/v1/admin/code-batches/{response.json()['batch_id']}/codes.csv"
            ).streaming_content
        )
        .decode()
        .splitlines()[1:]
    )
    assert {line.split(",")[3]: line.split(",")[0] for line in csv_rows} == codes


def test_generated_code_typed_loosely_still_validates(
    admin_api, storefront, spring, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        batch_id = generate(admin_api, {"coupon": "SPRING10", "prefix": "X1", "count": 50}).json()[
            "batch_id"
        ]
    # a code with a 0 and a 1 in its random part, typed with O, I/L, lower case and hyphens
    stored = next(c for c in Code.objects.filter(batch_id=batch_id).values_list("code", flat=True))
    typed = stored.lower().replace("0", "o").replace("1", "l")
    typed = "-".join(typed[i : i + 4] for i in range(0, len(typed), 4))
    body = storefront.post(
        "/api/v1/coupons/validate",
        {"coupon_code": typed, "user_id": "u-1", "cart": CART_150},
        format="json",
    ).json()
    assert body["valid"] is True, (stored, typed, body)


# --- no 500 for values the columns cannot hold (issue 11) --------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_uses_per_code": 2**31}, "max_uses_per_code"),
        ({"max_uses_per_code": 2**63}, "max_uses_per_code"),
        ({"count": 2**63}, "count"),
        ({"code_length": 2**31}, "code_length"),
        ({"expires_at": "9999-12-31T23:59:59-10:00"}, "expires_at"),  # year 10000 in UTC
        ({"expires_at": "9999-12-31"}, "expires_at"),
    ],
)
def test_values_beyond_the_columns_are_400(admin_api, spring, body, field):
    response = generate(admin_api, {"coupon": "SPRING10", "prefix": "SPR", "count": 10, **body})
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not CodeBatch.objects.exists()


def test_expiry_with_any_offset(admin_api, spring):
    # PostgreSQL refuses offsets past 15:59: the same instant in UTC is stored
    response = generate(
        admin_api,
        {
            "coupon": "SPRING10",
            "prefix": "SPR",
            "count": 1,
            "expires_at": "2100-01-01T00:00:00-17:01",
        },
    )
    assert response.status_code == 202, response.content
    batch = CodeBatch.objects.get(pk=response.json()["batch_id"])
    assert batch.expires_at.isoformat() == "2100-01-01T17:01:00+00:00"


def test_largest_values_the_columns_hold(admin_api, spring):
    response = generate(
        admin_api,
        {
            "coupon": "SPRING10",
            "prefix": "SPR",
            "count": 1,
            "max_uses_per_code": 2**31 - 1,
            "expires_at": "9999-12-30",
        },
    )
    assert response.status_code == 202, response.content
    status = admin_api.get(f"/api/v1/admin/code-batches/{response.json()['batch_id']}")
    assert status.status_code == 200  # and the row reads back
    assert status.json()["max_uses_per_code"] == 2**31 - 1


# --- the Idempotency-Key is stored with the batch (issue 11) -----------------------------

BODY = {"coupon": "SPRING10", "prefix": "SPR", "count": 10}


def test_retry_after_the_stored_response_was_lost_returns_the_batch(
    admin_api, spring, django_capture_on_commit_callbacks
):
    # given a batch whose stored idempotent response was lost (a crash after the commit)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = generate(admin_api, BODY, key="lost-1")
    IdempotencyRecord.objects.all().delete()
    # when the client retries with the same key
    with django_capture_on_commit_callbacks(execute=False) as more:
        retry = generate(admin_api, BODY, key="lost-1")
    # then the same batch, the same status and shape, and nothing queued twice
    assert first.status_code == retry.status_code == 202, retry.content
    assert retry.json() == first.json()
    assert "Idempotent-Replayed" not in retry.headers
    assert CodeBatch.objects.count() == 1
    assert len(callbacks) == 1
    assert len(more) == 0


def test_retry_after_finish_failed_returns_the_batch(admin_api, spring, monkeypatch, settings):
    # given a first attempt that committed its batch, then failed to store its response
    settings.IDEMPOTENCY_STALE_SECONDS = 0  # its record is taken over at once
    with monkeypatch.context() as patched:
        patched.setattr(idempotency, "_finish", _crash)
        with pytest.raises(RuntimeError):
            generate(admin_api, BODY, key="crash-1")
    assert CodeBatch.objects.count() == 1
    # when retried
    retry = generate(admin_api, BODY, key="crash-1")
    # then
    assert retry.status_code == 202, retry.content
    assert retry.json()["batch_id"] == str(CodeBatch.objects.get().pk)
    assert CodeBatch.objects.count() == 1
    # and from now on it is a plain replay
    assert generate(admin_api, BODY, key="crash-1").headers["Idempotent-Replayed"] == "true"


def test_retry_after_the_expiry_passed_still_returns_the_batch(admin_api, spring, monkeypatch):
    first = generate(admin_api, {**BODY, "expires_at": "2100-01-01"}, key="late-1")
    IdempotencyRecord.objects.all().delete()
    later = timezone.now().replace(year=2101)
    monkeypatch.setattr(timezone, "now", lambda: later)
    retry = generate(admin_api, {**BODY, "expires_at": "2100-01-01"}, key="late-1")
    assert retry.status_code == 202, retry.content
    assert retry.json()["batch_id"] == first.json()["batch_id"]


def test_lost_response_and_another_body_is_409(admin_api, spring):
    generate(admin_api, BODY, key="lost-2")
    IdempotencyRecord.objects.all().delete()
    other = generate(admin_api, {**BODY, "count": 11}, key="lost-2")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert CodeBatch.objects.count() == 1


def test_keys_are_per_caller(admin_api, spring):
    _, other_key = ApiKey.objects.create_key(name="other", scopes=["admin"])
    first = generate(admin_api, BODY, key="shared")
    second = generate(client_for(other_key), BODY, key="shared")
    assert first.status_code == second.status_code == 202
    assert first.json()["batch_id"] != second.json()["batch_id"]


def _crash(record, response):
    raise RuntimeError("crashed before the response was stored")


@pytest.mark.django_db(transaction=True)
def test_parallel_retries_over_http_make_one_batch(monkeypatch):
    # given
    monkeypatch.setattr(services, "batch_enqueue_on_commit", lambda batch_id: None)
    CouponFactory(code="SPRING10")
    key = api_key(["admin"])

    def call(_):
        response = client_for(key).post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="parallel-1")
        return response.status_code, response.json()

    # when 30 copies of one request arrive at once
    outcomes = race(call, range(30))
    # then one batch; every answer is it (or "still in progress", never a second one)
    assert not unexpected(outcomes), unexpected(outcomes)
    assert CodeBatch.objects.count() == 1
    batch_id = str(CodeBatch.objects.get().pk)
    for status, body in (o.value for o in outcomes):
        assert (status == 202 and body["batch_id"] == batch_id) or (
            status == 409 and body["error"]["code"] == "idempotency_in_progress"
        ), body


@pytest.mark.django_db(transaction=True)
def test_parallel_creates_with_one_key_make_one_batch(monkeypatch):
    # given no idempotency record at all (lost): only the batch's own key decides
    queued = []
    monkeypatch.setattr(services, "batch_enqueue_on_commit", queued.append)
    coupon = CouponFactory(code="SPRING10")

    def create(_):
        return services.batch_create(
            coupon=coupon,
            prefix="SPR",
            count=10,
            idempotency_key="parallel-2",
            idempotency_principal="api_key:x",
            request_fingerprint="f" * 64,
        ).pk

    # when
    outcomes = race(create, range(30))
    # then
    assert not unexpected(outcomes), unexpected(outcomes)
    assert CodeBatch.objects.count() == 1
    assert {o.value for o in outcomes} == {CodeBatch.objects.get().pk}
    assert len(queued) == 1
