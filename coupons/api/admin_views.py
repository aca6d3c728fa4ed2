"""Admin API for coupon definitions (scope admin). Marketing normally uses the Django
admin; these endpoints let tools manage coupons with the seed's JSON."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import HasAdminScope
from core.idempotency import idempotent
from coupons import services
from coupons.api import admin_serializers as a
from coupons.api.serializers import ErrorOut
from coupons.api.views import OPTIONAL_IDEMPOTENCY_HEADER, parse
from coupons.models import Coupon

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut}


class CouponCollectionApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(operation_id="admin_coupons_list", tags=["admin"],
                   parameters=[a.CouponListQuery],
                   responses={200: a.CouponListOut, **ERRORS})
    def get(self, request):
        query = parse(a.CouponListQuery, request.query_params.dict())  # no form semantics
        qs = Coupon.objects.order_by("code")
        if query.get("active") is not None:
            qs = qs.filter(active=query["active"])
        if query.get("type"):
            qs = qs.filter(type=query["type"])
        limit, offset = query["limit"], query["offset"]
        return Response({"count": qs.count(),
                         "results": [a.coupon_body(c) for c in qs[offset:offset + limit]]})

    @extend_schema(operation_id="admin_coupons_create", tags=["admin"],
                   request=a.CouponDefinitionIn, parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
                   responses={201: a.CouponOut, 409: ErrorOut, **ERRORS})
    @idempotent(required=False)
    def post(self, request):
        data = parse(a.CouponDefinitionIn, request.data)
        coupon = services.coupon_create(fields=a.definition_to_fields(data))
        return Response(a.coupon_body(coupon), status=201)


class CouponDetailApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(operation_id="admin_coupons_get", tags=["admin"],
                   responses={200: a.CouponOut, 404: ErrorOut, **ERRORS})
    def get(self, request, code: str):
        return Response(a.coupon_body(get_object_or_404(Coupon, code=code.upper())))

    @extend_schema(operation_id="admin_coupons_update", tags=["admin"],
                   request=a.CouponDefinitionIn, parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
                   responses={200: a.CouponOut, 404: ErrorOut, 409: ErrorOut, **ERRORS})
    @idempotent(required=False)
    def patch(self, request, code: str):
        coupon = get_object_or_404(Coupon, code=code.upper())
        serializer = a.CouponDefinitionIn(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = a.definition_to_fields(serializer.validated_data, instance=coupon)
        fields.pop("code", None)  # the identifier is not renamed through PATCH
        coupon = services.coupon_update(coupon_id=coupon.pk, fields=fields)
        return Response(a.coupon_body(coupon))

