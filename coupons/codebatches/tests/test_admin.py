"""The Django admin: "Generate codes…" on the coupon list, the batch form (counts, CSV of
customers, clear errors), the batch list and page with progress, the CSV download, and
who may do what (the marketing group may; a staff user without the permissions may not)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from coupons.codebatches.models import CodeBatch
from coupons.codebatches.tests.factories import CodeBatchFactory
from coupons.models import Code
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

COUPONS = reverse("admin:coupons_coupon_changelist")
BATCHES = reverse("admin:codebatches_codebatch_changelist")


@pytest.fixture
def outsider(client):
    user = User.objects.create_user("otto", password="pw", is_staff=True)
    client.force_login(user)
    return client


def generate_url(coupon) -> str:
    return reverse("admin:codebatches_codebatch_generate", args=[coupon.pk])


def form(**overrides) -> dict:
    data = {
        "prefix": "adm",
        "count": "300",
        "code_length": "12",
        "max_uses_per_code": "1",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_action_on_coupon_list_leads_to_the_form(marketing_client):
    coupon = CouponFactory()
    response = marketing_client.post(
        COUPONS, {"action": "generate_codes", "_selected_action": [coupon.pk]}
    )
    assert response.status_code == 302
    assert response["Location"] == generate_url(coupon)
    page = marketing_client.get(generate_url(coupon))
    assert page.status_code == 200
    assert b"Generate codes" in page.content


def test_action_wants_exactly_one_coupon(marketing_client):
    a, b = CouponFactory(), CouponFactory()
    response = marketing_client.post(
        COUPONS, {"action": "generate_codes", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    assert b"Select exactly one coupon" in response.content


def test_form_creates_the_batch_and_shows_its_page(
    marketing_client, django_capture_on_commit_callbacks
):
    coupon = CouponFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing_client.post(generate_url(coupon), form())
    batch = CodeBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:codebatches_codebatch_change", args=[batch.pk])
    assert batch.prefix == "ADM"
    assert batch.coupon == coupon
    assert batch.created_by.username == "mia"
    assert batch.status == "done"
    assert Code.objects.filter(batch=batch).count() == 300
    page = marketing_client.get(response["Location"])
    assert page.status_code == 200
    assert b"<progress" in page.content
    assert b"Download CSV" in page.content
    assert b'http-equiv="refresh"' not in page.content  # done: no more reloading


def test_form_with_customer_csv_binds_one_code_each(
    marketing_client, django_capture_on_commit_callbacks
):
    coupon = CouponFactory()
    upload = SimpleUploadedFile(
        "vip.csv", b"customer_id\nu-1\nu-2\n\nu-2\nu-3\n", content_type="text/csv"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing_client.post(generate_url(coupon), form(count="", customers_csv=upload))
    assert response.status_code == 302
    batch = CodeBatch.objects.get()
    assert batch.requested == 3
    assert batch.customer_ids == ["u-1", "u-2", "u-3"]
    assert sorted(
        Code.objects.filter(batch=batch).values_list("customer__external_id", flat=True)
    ) == ["u-1", "u-2", "u-3"]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"prefix": "LOL"}, "prefix", "I, L or O"),
        ({"count": "0"}, "count", "greater than or equal to 1"),
        ({"count": "1000001"}, "count", "less than or equal to 1000000"),
        ({"count": ""}, "count", "Give count"),
        ({"code_length": "30"}, "code_length", "less than or equal to 24"),
        ({"expires_at_0": "2001-01-01", "expires_at_1": "00:00"}, "expires_at", "past"),
    ],
)
def test_form_errors_are_clear(marketing_client, data, field, words):
    coupon = CouponFactory()
    response = marketing_client.post(generate_url(coupon), form(**data))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert words in " ".join(errors[field]), errors
    assert not CodeBatch.objects.exists()


def test_csv_count_must_match(marketing_client):
    coupon = CouponFactory()
    upload = SimpleUploadedFile("c.csv", b"a\nb\n", content_type="text/csv")
    response = marketing_client.post(generate_url(coupon), form(count="5", customers_csv=upload))
    assert "their number" in " ".join(response.context["form"].errors["count"])


def test_batch_list_shows_progress_and_refreshes_while_generating(marketing_client):
    CodeBatchFactory(requested=200, generated=50)
    page = marketing_client.get(BATCHES)
    assert page.status_code == 200
    assert b'<progress value="50" max="200"' in page.content
    assert b"25%" in page.content
    assert b'http-equiv="refresh"' in page.content
    batch = CodeBatch.objects.get()
    detail = marketing_client.get(reverse("admin:codebatches_codebatch_change", args=[batch.pk]))
    assert detail.status_code == 200
    assert b'http-equiv="refresh"' in detail.content


def test_csv_download_from_the_admin(marketing_client, django_capture_on_commit_callbacks):
    coupon = CouponFactory()
    with django_capture_on_commit_callbacks(execute=True):
        marketing_client.post(generate_url(coupon), form(count="40"))
    batch = CodeBatch.objects.get()
    response = marketing_client.get(reverse("admin:codebatches_codebatch_csv", args=[batch.pk]))
    assert response.status_code == 200
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "code,max_uses,expires_at,customer_id"
    assert len(lines) == 41


def test_resume_action_requeues_failed_batches(
    marketing_client, django_capture_on_commit_callbacks
):
    batch = CodeBatchFactory(requested=30, status=CodeBatch.Status.FAILED, error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        marketing_client.post(BATCHES, {"action": "resume", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == "done"
    assert batch.generated == 30


def test_staff_without_permissions_may_not(outsider):
    coupon = CouponFactory()
    batch = CodeBatchFactory(coupon=coupon)
    assert outsider.get(generate_url(coupon)).status_code == 403
    assert outsider.post(generate_url(coupon), form()).status_code == 403
    assert (
        outsider.get(reverse("admin:codebatches_codebatch_csv", args=[batch.pk])).status_code == 403
    )
    assert outsider.get(BATCHES).status_code == 403
    assert CodeBatch.objects.count() == 1


def test_view_only_user_cannot_start_batches(client):
    user = User.objects.create_user("vic", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_coupon", "view_codebatch"])
    )
    client.force_login(user)
    coupon = CouponFactory()
    assert client.get(generate_url(coupon)).status_code == 403
    response = client.post(
        COUPONS, {"action": "generate_codes", "_selected_action": [coupon.pk]}, follow=True
    )
    assert b"You may not generate codes" in response.content
    assert client.get(BATCHES).status_code == 200
