"""Referral endpoints (API.md "Referrals"): validate, call one service or selector,
respond."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors as billing
from core.api.parsing import parse
from core.api.schema import ERRORS, ErrorOut
from core.auth import HasAdminScope, HasStorefrontScope
from core.errors import Forbidden, Invalid
from core.money import format_amount
from referrals import selectors, services
from referrals.api import serializers as s

TAGS = ["referrals"]


def _own(request, customer_id: str) -> None:
    principal = request.user
    if principal.kind == "customer" and principal.customer_id != customer_id:
        raise Forbidden("forbidden", "This belongs to another customer.")


class ReferralCodeApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="referral_codes_create",
        request=s.CodeIn,
        responses={200: s.CodeOut, 201: s.CodeOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.CodeIn, request.data)
        _own(request, data["customer_id"])
        code, created = services.code_get_or_create(
            customer_id=data["customer_id"], context=data.get("context")
        )
        return Response(
            {"code": code.code, "customer_id": code.customer_id}, status=201 if created else 200
        )


class ReferralAttributeApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="referrals_attribute",
        request=s.AttributeIn,
        responses={
            200: s.AttributeOut,
            201: s.AttributeOut,
            404: ErrorOut,
            422: ErrorOut,
            **ERRORS,
        },
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.AttributeIn, request.data)
        _own(request, data["customer_id"])
        referral, created = services.attribute(
            code=data["code"], customer_id=data["customer_id"], context=data.get("context")
        )
        return Response(
            {
                "referral_id": str(referral.pk),
                "status": referral.status,
                "referrer_id": referral.referrer_id,
                "invitee_coupon": referral.invitee_coupon,
            },
            status=201 if created else 200,
        )


class ReferralCustomerApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="referrals_customer", responses={200: s.CustomerOut, **ERRORS}, tags=TAGS
    )
    def get(self, request, customer_id: str):
        if len(customer_id) > 100:
            raise Invalid(
                "invalid_request",
                "customer_id is too long.",
                fields={"customer_id": ["At most 100 characters."]},
            )
        _own(request, customer_id)
        code = selectors.code_for(customer_id)
        facts = billing.customer_facts(customer_id)
        items = []
        for referral in selectors.referrals_of(customer_id):
            item = {
                "referral_id": str(referral.pk),
                "status": referral.status,
                "created_at": referral.created_at.isoformat(),
            }
            if referral.reason:
                item["reason"] = referral.reason
            items.append(item)
        return Response(
            {
                "code": code.code if code else None,
                "referrals": items,
                "rewards_earned": format_amount(
                    selectors.rewards_earned_minor(customer_id), facts.currency
                ),
                "credit_balance": format_amount(facts.credit_balance_minor, facts.currency),
            }
        )


class _StatsQuery(serializers.Serializer):
    to = serializers.DateField(required=False)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        raw = data.get("from")
        if raw is not None:
            value["from"] = serializers.DateField().run_validation(raw)
        return value


class ReferralStatsAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_referrals_stats",
        parameters=[
            OpenApiParameter("from", str, description="First day (inclusive, YYYY-MM-DD)"),
            OpenApiParameter("to", str, description="Last day (inclusive, YYYY-MM-DD)"),
        ],
        responses={200: s.StatsOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request):
        query = parse(_StatsQuery, request.query_params)
        end = query.get("to") or timezone.now().date()
        start = query.get("from") or end - timedelta(days=29)
        if start > end:
            raise Invalid("invalid_request", "from is after to.", fields={"from": ["After to."]})
        return Response(asdict(selectors.stats(start, end)))
