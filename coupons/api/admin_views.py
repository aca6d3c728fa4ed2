"""Admin API for coupon definitions (scope admin). Marketing normally uses the Django
admin; these endpoints let tools manage coupons with the seed's JSON."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsing import parse
from core.api.schema import OPTIONAL_IDEMPOTENCY_HEADER, ErrorOut
from core.auth import HasAdminScope
from core.errors import database_input_errors
from core.idempotency import idempotent
from coupons import services
from coupons.api import admin_serializers as a
from coupons.models import Coupon

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut}
# The field of the API's coupon definition each check constraint guards (the names
# coupons.services.coupon_check reports its own errors on).
CONSTRAINT_FIELDS = {
    "coupon_uses_within_limit": "max_uses_total",
    "coupon_budget_within_limit": "budget",
    "coupon_percent_at_most_100": "value",
    "coupon_bogo_percent_at_most_100": "bogo",
    "coupon_money_non_negative": "value",
    "coupon_window_ordered": "valid_to",
    "coupon_duration_invoices_matches": "duration_invoices",
}


class CouponCollectionApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_coupons_list",
        tags=["admin"],
        parameters=[a.CouponListQuery],
        responses={200: a.CouponListOut, **ERRORS},
    )
    def get(self, request):
        query = parse(a.CouponListQuery, request.query_params.dict())  # no form semantics
        qs = Coupon.objects.order_by("code")
        if query.get("active") is not None:
            qs = qs.filter(active=query["active"])
        if query.get("type"):
            qs = qs.filter(type=query["type"])
        limit, offset = query["limit"], query["offset"]
        return Response(
            {
                "count": qs.count(),
                "results": [a.coupon_body(c) for c in qs[offset : offset + limit]],
            }
        )

    @extend_schema(
        operation_id="admin_coupons_create",
        tags=["admin"],
        request=a.CouponDefinitionIn,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses={201: a.CouponOut, 409: ErrorOut, **ERRORS},
    )
    @idempotent(required=False)
    def post(self, request):
        data = parse(a.CouponDefinitionIn, request.data)
        with database_input_errors(CONSTRAINT_FIELDS):
            coupon = services.coupon_create(fields=a.definition_to_fields(data))
        return Response(a.coupon_body(coupon), status=201)


class CouponDetailApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_coupons_get",
        tags=["admin"],
        responses={200: a.CouponOut, 404: ErrorOut, **ERRORS},
    )
    def get(self, request, code: str):
        return Response(a.coupon_body(get_object_or_404(Coupon, code=code.upper())))

    @extend_schema(
        operation_id="admin_coupons_update",
        tags=["admin"],
        request=a.CouponDefinitionIn,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses={200: a.CouponOut, 404: ErrorOut, 409: ErrorOut, **ERRORS},
    )
    @idempotent(required=False)
    def patch(self, request, code: str):
        coupon = get_object_or_404(Coupon, code=code.upper())
        # The same field validation as create (nested bogo and tiers whole, see
        # WholeOnPatch); coupon_update checks the merged coupon with coupon_check.
        serializer = a.CouponDefinitionIn(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = a.definition_to_fields(serializer.validated_data, instance=coupon)
        fields.pop("code", None)  # the identifier is not renamed through PATCH
        with database_input_errors(CONSTRAINT_FIELDS):
            coupon = services.coupon_update(coupon_id=coupon.pk, fields=fields)
        return Response(a.coupon_body(coupon))
