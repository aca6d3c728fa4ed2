"""Bulk code generation (API.md "POST /api/v1/admin/coupons/bulk-generate")."""

from django.urls import path

from coupons.codebatches.api import views

urlpatterns = [
    path(
        "admin/coupons/bulk-generate",
        views.CodeBatchCreateApi.as_view(),
        name="admin-coupons-bulk-generate",
    ),
    path(
        "admin/code-batches/<uuid:batch_id>",
        views.CodeBatchDetailApi.as_view(),
        name="admin-code-batch-detail",
    ),
    path(
        "admin/code-batches/<uuid:batch_id>/codes.csv",
        views.CodeBatchCodesCsvApi.as_view(),
        name="admin-code-batch-codes-csv",
    ),
]
