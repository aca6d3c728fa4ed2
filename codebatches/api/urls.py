"""Bulk code generation (API.md "POST /api/v1/admin/coupons/bulk-generate")."""

urlpatterns: list = []
