"""Flash-sale endpoints: validate input, call one service, respond (STYLE.md)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsing import parse
from core.api.schema import IDEMPOTENCY_HEADER, OPTIONAL_IDEMPOTENCY_HEADER, ErrorOut
from core.auth import HasAdminScope, HasStorefrontScope, resolve_customer_id
from core.errors import database_input_errors
from core.idempotency import HEADER, fingerprint, idempotent
from coupons.api import admin_views as coupon_admin_views
from coupons.api.admin_serializers import definition_to_fields
from coupons.campaigns import selectors, services
from coupons.campaigns.api import serializers as s
from coupons.campaigns.models import Campaign
from coupons.engine import reasons as r

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut}
CLAIM_REJECTION_STATUS = {r.SOLD_OUT: 409, r.CAMPAIGN_NOT_LIVE: 422}  # API.md's claim answers
CONSTRAINT_FIELDS = {
    "campaign_window_ordered": "ends_at",
    "campaign_inventory_positive": "inventory",
    "campaign_claimed_within_inventory": "inventory",
    "campaign_hold_minutes_range": "claim_hold_minutes",
    # The campaign's coupon is the request's discount.
    **dict.fromkeys(coupon_admin_views.CONSTRAINT_FIELDS, "discount"),
}


def campaign_body(c, *, admin: bool = False) -> dict:
    body = {
        "id": str(c.pk),
        "name": c.name,
        "status": c.status,
        "remaining": c.remaining,
        "inventory": c.inventory,
        "starts_at": c.starts_at.isoformat(),
        "ends_at": c.ends_at.isoformat(),
    }
    if admin:
        body.update(
            claimed=c.claimed,
            claim_hold_minutes=c.claim_hold_minutes,
            stopped_at=c.stopped_at.isoformat() if c.stopped_at else None,
            coupon_id=c.coupon_id,
        )
    return body


# 409 is either the business answer (sold out) or an error body (an Idempotency-Key
# reused with another request, or still in progress).
CLAIM_CONFLICT = PolymorphicProxySerializer(
    component_name="CampaignClaimConflict",
    serializers=[s.ClaimRejectedOut, ErrorOut],
    resource_type_field_name=None,
)


class CampaignCollectionApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_campaigns_list",
        tags=["admin"],
        responses={200: s.CampaignListOut, **ERRORS},
    )
    def get(self, request):
        """The newest 100 campaigns with their live claimed / remaining counts."""
        campaigns = Campaign.objects.order_by("-created_at")[:100]
        return Response({"results": [campaign_body(c, admin=True) for c in campaigns]})

    @extend_schema(
        operation_id="admin_campaigns_create",
        tags=["admin"],
        request=s.CampaignCreateIn,
        parameters=[OPTIONAL_IDEMPOTENCY_HEADER],
        responses={201: s.CampaignAdminOut, 409: ErrorOut, **ERRORS},
    )
    @idempotent(required=False)
    def post(self, request):
        data = parse(s.CampaignCreateIn, request.data)
        try:
            discount = definition_to_fields(data["discount"])
        except ValidationError as exc:  # money the currency cannot hold, e.g. "0.001"
            raise ValidationError({"discount": exc.detail}) from None
        try:
            with database_input_errors(CONSTRAINT_FIELDS):
                campaign = services.campaign_create(
                    name=data["name"],
                    inventory=data["inventory"],
                    starts_at=data["starts_at"],
                    ends_at=data["ends_at"],
                    discount=discount,
                    claim_hold_minutes=data["claim_hold_minutes"],
                    idempotency_key=request.headers.get(HEADER, "").strip(),
                    idempotency_principal=request.user.ident,
                    request_fingerprint=fingerprint(request.method, request.path, request.data),
                )
        except DjangoValidationError as exc:  # the discount's own rules (coupon_check)
            fields = (
                exc.message_dict
                if hasattr(exc, "error_dict")
                else {"non_field_errors": exc.messages}
            )
            raise ValidationError({"discount": fields}) from None
        return Response(campaign_body(campaign, admin=True), status=201)


class CampaignDetailApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="campaigns_get",
        tags=["campaigns"],
        responses={200: s.CampaignOut, 404: ErrorOut, **ERRORS},
    )
    def get(self, request, campaign_id):
        return Response(campaign_body(selectors.campaign_get(campaign_id)))


class CampaignClaimApi(APIView):
    """Claim one unit. An end customer's JWT names the customer (a differing body id is
    403); a storefront server key names them in the body."""

    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="campaigns_claim",
        tags=["campaigns"],
        request=s.ClaimIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: s.ClaimOut,
            200: s.ClaimOut,
            404: ErrorOut,
            409: CLAIM_CONFLICT,
            422: s.ClaimRejectedOut,
            **ERRORS,
        },
    )
    @idempotent(required=True)
    def post(self, request, campaign_id):
        data = parse(s.ClaimIn, request.data)
        body_id = (data.get("customer") or {}).get("id") or data.get("user_id")
        customer_id = resolve_customer_id(request.user, body_id)
        if not customer_id:
            raise ValidationError({"customer": ["customer.id (or user_id) is required."]})
        if len(customer_id) > 100:  # a JWT subject is not length-checked by the parser
            raise ValidationError({"customer": ["At most 100 characters."]})
        try:
            claim = services.campaign_claim(campaign_id=campaign_id, customer_id=customer_id)
        except services.ClaimRejectedError as exc:
            return Response(
                {"claimed": False, "reason": exc.reason, "message": exc.message},
                status=CLAIM_REJECTION_STATUS[exc.reason],
            )
        return Response(
            {
                "claim_id": str(claim.claim_id),
                "token": claim.token,
                "status": claim.status,
                "expires_at": claim.expires_at.isoformat(),
            },
            status=201 if claim.created else 200,
        )
