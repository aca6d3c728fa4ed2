"""Entitlements endpoints (API.md "Entitlements"): validate input, call one service or
selector, respond. A denied reserve is a 422 whose body is the decision itself."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsing import parse
from core.api.schema import ERRORS, ErrorOut
from core.auth import HasAdminScope, HasStorefrontScope, HasStorefrontServerScope
from core.errors import Forbidden, Invalid
from entitlements import cache, selectors, services
from entitlements.api import presenters
from entitlements.api import serializers as s

TAGS = ["entitlements"]
MAX_CUSTOMER_ID = 100


def _customer(request, customer_id: str) -> str:
    """The path's customer: well-formed, and the caller's own when an end customer asks."""
    if len(customer_id) > MAX_CUSTOMER_ID:
        raise Invalid(
            "invalid_request",
            "customer_id is too long.",
            fields={"customer_id": [f"At most {MAX_CUSTOMER_ID} characters."]},
        )
    principal = request.user
    if principal.kind == "customer" and principal.customer_id != customer_id:
        raise Forbidden("forbidden", "This belongs to another customer.")
    return customer_id


class FeatureCollectionAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_features_create",
        request=s.FeatureIn,
        responses={201: s.FeatureOut, 409: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.FeatureIn, request.data)
        feature = services.feature_create(**data)
        return Response(presenters.feature_body(feature), status=201)

    @extend_schema(
        operation_id="admin_features_list", responses={200: s.FeatureListOut, **ERRORS}, tags=TAGS
    )
    def get(self, request):
        return Response({"results": [presenters.feature_body(f) for f in selectors.features_all()]})


class EntitlementsApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="entitlements_get", responses={200: s.EntitlementsOut, **ERRORS}, tags=TAGS
    )
    def get(self, request, customer_id: str):
        ents = cache.entitlements_get(_customer(request, customer_id))
        return Response(presenters.entitlements_body(ents))


class EntitlementCheckApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="entitlements_check",
        request=s.CheckIn,
        responses={200: s.DecisionOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, customer_id: str):
        customer_id = _customer(request, customer_id)
        data = parse(s.CheckIn, request.data)
        decision = services.check(
            customer_id=customer_id, feature_key=data["feature"], quantity=data["quantity"]
        )
        return Response(presenters.decision_body(decision))


class EntitlementReserveApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="entitlements_reserve",
        request=s.ReserveIn,
        responses={200: s.DecisionOut, 404: ErrorOut, 422: s.DecisionOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, customer_id: str):
        customer_id = _customer(request, customer_id)
        data = parse(s.ReserveIn, request.data)
        decision = services.reserve(
            customer_id=customer_id,
            feature_key=data["feature"],
            resource_id=data["resource_id"],
            quantity=data["quantity"],
        )
        return Response(presenters.decision_body(decision), status=200 if decision.allowed else 422)


class EntitlementReleaseApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="entitlements_release",
        request=s.ReleaseIn,
        responses={200: s.DecisionOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, customer_id: str):
        customer_id = _customer(request, customer_id)
        data = parse(s.ReleaseIn, request.data)
        decision = services.release(
            customer_id=customer_id, feature_key=data["feature"], resource_id=data["resource_id"]
        )
        return Response(presenters.decision_body(decision))


class UsageApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="usage_record",
        request=s.UsageIn,
        responses={202: s.UsageOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.UsageIn, request.data)
        accepted, duplicates = services.usage_record(
            events=[services.UsageIn(**event) for event in data["events"]]
        )
        return Response({"accepted": accepted, "duplicates": duplicates}, status=202)


class GrantCollectionAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_entitlement_grants_create",
        request=s.GrantIn,
        responses={201: s.GrantOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, customer_id: str):
        customer_id = _customer(request, customer_id)
        data = parse(s.GrantIn, request.data)
        grant = services.grant_create(
            customer_id=customer_id,
            feature_key=data["feature"],
            value=data["value"],
            expires_at=data["expires_at"],
            reason=data["reason"],
            created_by=request.user.ident,
        )
        return Response(presenters.grant_body(grant), status=201)


class GrantRevokeAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_entitlement_grants_revoke",
        request=s.GrantRevokeIn,
        responses={200: s.GrantOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, customer_id: str, grant_id: str):
        customer_id = _customer(request, customer_id)
        data = parse(s.GrantRevokeIn, request.data or {})
        grant = services.grant_revoke(
            customer_id=customer_id, grant_id=grant_id, reason=data["reason"], by=request.user.ident
        )
        return Response(presenters.grant_body(grant))


class EntitlementEventsAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_entitlement_events",
        responses={200: s.EventListOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, customer_id: str):
        customer_id = _customer(request, customer_id)
        return Response(
            {"results": [presenters.event_body(e) for e in selectors.events_for(customer_id)]}
        )
