"""Admin API: one coupon's analytics (scope admin)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsing import parse
from core.api.schema import ErrorOut
from core.auth import HasAdminScope
from core.errors import NotFound
from coupons.analytics import selectors
from coupons.analytics.api import serializers as s


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
            raise NotFound("coupon_not_found", f"No coupon '{code}'.")
        return Response(selectors.coupon_stats(coupon, start=query["start"], end=query["end"]))
