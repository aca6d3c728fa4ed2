"""Admin API: one coupon's analytics (scope admin)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import HasAdminScope
from core.errors import ApiError
from coupons.analytics import selectors
from coupons.analytics.api import serializers as s
from coupons.api.serializers import ErrorOut
from coupons.api.views import parse


class CouponStatsApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_coupon_stats",
        tags=["admin"],
        parameters=[s.CouponStatsQuery],
        responses={
            200: s.CouponStatsOut,
            400: ErrorOut,
            401: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
        },
    )
    def get(self, request, code: str):
        query = parse(s.CouponStatsQuery, request.query_params.dict())
        coupon = selectors.coupon_by_code(code)
        if coupon is None:
            raise ApiError("coupon_not_found", f"No coupon '{code}'.", status_code=404)
        return Response(selectors.coupon_stats(coupon, start=query["start"], end=query["end"]))
