"""Checkout endpoints (API.md "Coupons"): validate input, call one service, respond."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core import metrics
from core.api.parsing import parse
from core.api.schema import ERRORS, IDEMPOTENCY_HEADER, OPTIONAL_IDEMPOTENCY_HEADER, ErrorOut
from core.auth import HasStorefrontScope, HasStorefrontServerScope, resolve_customer_id
from core.idempotency import idempotent
from core.money import MoneyError, parse_amount
from coupons import services
from coupons.abuse.ratelimit import Guard
from coupons.api import presenters
from coupons.api import serializers as s
from coupons.engine.reasons import COUPON_NOT_FOUND
from coupons.engine.types import Shopper


def shopper_from(request, data) -> Shopper:
    """The shopper: a server key vouches for the body's customer; an end customer's own
    body cannot grant segments (only the token's `segments` claim and stored ones count)."""
    customer = data.get("customer") or {}
    principal = request.user
    customer_id = resolve_customer_id(principal, customer.get("id") or data.get("user_id"))
    segments = (
        principal.segments
        if principal.kind == "customer"
        else frozenset(customer.get("segments") or ())
    )
    return Shopper(
        id=customer_id, segments=segments, orders_count=customer.get("orders_count") or 0
    )


def guard_for(request, data, shopper: Shopper) -> Guard:
    """Abuse limits for a call with codes: refused (429) while its customer, IP or session
    is blocked for guessing."""
    guard = Guard.for_request(request, shopper.id, data.get("context"))
    if data["codes"]:
        guard.check()
    return guard


def not_found(rejections) -> int:
    return sum(1 for x in rejections if x.reason == COUPON_NOT_FOUND)


class CouponValidateApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="coupons_validate",
        request=s.CouponValidateIn,
        responses={200: s.CouponValidateOut, **ERRORS},
        tags=["coupons"],
    )
    def post(self, request):
        data = parse(s.CouponValidateIn, request.data)
        shopper = shopper_from(request, data)
        guard = guard_for(request, data, shopper)
        result = services.coupons_validate(codes=data["codes"], shopper=shopper, cart=data["cart"])
        guard.count_not_found(not_found(x.rejection for x in result.rejected))
        rejection = result.first_rejection
        metrics.coupon_validations.labels(rejection.reason if rejection else "valid").inc()
        return Response(presenters.validate_body(result, data["cart"]))


class PromotionEvaluateApi(APIView):
    """The complete, explained price of a cart: typed codes plus auto promotions."""

    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="promotions_evaluate",
        request=s.PromotionEvaluateIn,
        responses={200: s.PromotionEvaluateOut, **ERRORS},
        tags=["promotions"],
    )
    def post(self, request):
        data = parse(s.PromotionEvaluateIn, request.data)
        shopper = shopper_from(request, data)
        guard = guard_for(request, data, shopper)
        result = services.coupons_validate(codes=data["codes"], shopper=shopper, cart=data["cart"])
        guard.count_not_found(not_found(x.rejection for x in result.rejected))
        outcome = "inexact" if not result.exact else "applied" if result.pricing.applied else "none"
        metrics.promotion_evaluations.labels(outcome).inc()
        return Response(presenters.evaluate_body(result, data["cart"]))


class CouponApplyApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="coupons_apply",
        request=s.CouponApplyIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.CouponApplyOut, 409: ErrorOut, 422: s.CouponRejectedOut, **ERRORS},
        tags=["coupons"],
    )
    @idempotent(required=True)
    def post(self, request):
        data = parse(s.CouponApplyIn, request.data)
        shopper = shopper_from(request, data)
        guard = guard_for(request, data, shopper)
        result = services.redemption_apply(
            codes=data["codes"],
            shopper=shopper,
            cart=data["cart"],
            order_id=data["order_id"],
            context=data.get("context") or {},
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        if result.rejection is not None:
            guard.count_not_found(not_found([result.rejection]))
            metrics.coupon_applications.labels(result.rejection.reason).inc()
            return Response(presenters.rejection_body(result.rejection, key="applied"), status=422)
        metrics.coupon_applications.labels("replayed" if result.replayed else "applied").inc()
        return Response(
            presenters.apply_body(data["order_id"], result.redemptions, data["cart"].currency)
        )


_ORDER_RESPONSES = {200: s.OrderOut, 404: ErrorOut, 409: ErrorOut, **ERRORS}


class OrderConfirmApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="orders_confirm",
        request=None,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses=_ORDER_RESPONSES,
        tags=["orders"],
    )
    @idempotent(required=False)
    def post(self, request, order_id: str):
        rows = services.order_confirm(order_id=order_id)
        return Response(presenters.order_body(order_id, rows))


class OrderReleaseApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="orders_release",
        request=None,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses=_ORDER_RESPONSES,
        tags=["orders"],
    )
    @idempotent(required=False)
    def post(self, request, order_id: str):
        rows = services.order_release(order_id=order_id)
        return Response(presenters.order_body(order_id, rows))


class OrderReturnApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="orders_return",
        request=s.OrderReturnIn,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses={**_ORDER_RESPONSES, 200: OpenApiResponse(s.OrderOut, "Return recorded")},
        tags=["orders"],
    )
    @idempotent(required=False)
    def post(self, request, order_id: str):
        data = parse(s.OrderReturnIn, request.data or {})
        amount = None
        if data.get("amount") is not None:
            rows = services.selectors.redemptions_for_order(order_id)
            currency = rows[0].currency if rows else "USD"
            try:
                amount = parse_amount(data["amount"], currency)
            except MoneyError as exc:
                raise ValidationError({"amount": [str(exc)]}) from None
        rows = services.order_return(order_id=order_id, amount_minor=amount)
        return Response(presenters.order_body(order_id, rows))
