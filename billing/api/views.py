"""Billing endpoints (API.md "Billing"): validate input, call one service or selector,
respond. An end customer's token reaches only that customer's own billing."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services, testclocks
from billing.api import presenters
from billing.api import serializers as s
from core.api.parsing import parse
from core.api.schema import ERRORS, IDEMPOTENCY_HEADER, ErrorOut
from core.auth import (
    HasAdminScope,
    HasStorefrontScope,
    HasStorefrontServerScope,
    resolve_customer_id,
)
from core.errors import Forbidden, Invalid, database_input_errors
from core.idempotency import HEADER, fingerprint, idempotent

TAGS = ["billing"]
PLAN_CONSTRAINTS = {
    "plan_amount_in_range": "amount",
    "plan_trial_days_max": "trial_days",
}


def _own(request, customer_id: str) -> None:
    """An end customer may only see and change their own billing."""
    principal = request.user
    if principal.kind == "customer" and principal.customer_id != customer_id:
        raise Forbidden("forbidden", "This belongs to another customer.")


def _idempotency(request) -> dict:
    return {
        "principal": request.user.ident,
        "key": request.headers.get(HEADER, "").strip(),
        "fingerprint": fingerprint(request.method, request.path, request.data),
    }


def _subscription_response(sub, status: int = 200) -> Response:
    latest = selectors.latest_invoice_ids([sub.pk]).get(sub.pk)
    return Response(presenters.subscription_body(sub, latest), status=status)


# --- plans ------------------------------------------------------------------------------


class PlanCollectionAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_plans_create",
        request=s.PlanIn,
        responses={201: s.PlanOut, 409: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.PlanIn, request.data)
        with database_input_errors(PLAN_CONSTRAINTS):
            plan = services.plan_create(fields=s.plan_fields(data))
        return Response(presenters.plan_body(plan), status=201)

    @extend_schema(
        operation_id="admin_plans_list", responses={200: s.PlanListOut, **ERRORS}, tags=TAGS
    )
    def get(self, request):
        from billing.models import Plan

        return Response(
            {"results": [presenters.plan_body(p) for p in Plan.objects.order_by("code")]}
        )


class PlanDetailAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_plans_get",
        responses={200: s.PlanOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, code: str):
        return Response(presenters.plan_body(selectors.plan_get(code)))

    @extend_schema(
        operation_id="admin_plans_update",
        request=s.PlanPatchIn,
        responses={200: s.PlanOut, 404: ErrorOut, 409: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def patch(self, request, code: str):
        data = parse(s.PlanPatchIn, request.data)
        plan = selectors.plan_get(code)
        fields = s.plan_fields(data)
        if "amount" in fields:
            currency = fields.get("currency", plan.currency)
            fields["amount_minor"] = s.minor(fields.pop("amount"), currency, "amount")
        elif "currency" in fields and fields["currency"] != plan.currency:
            fields["amount_minor"] = s.minor(
                presenters.plan_body(plan)["amount"], fields["currency"], "currency"
            )
        with database_input_errors(PLAN_CONSTRAINTS):
            plan = services.plan_update(code=code, fields=fields)
        return Response(presenters.plan_body(plan))


class PlanListApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(operation_id="plans_list", responses={200: s.PlanListOut, **ERRORS}, tags=TAGS)
    def get(self, request):
        return Response({"results": [presenters.plan_body(p) for p in selectors.plans_active()]})


# --- customers --------------------------------------------------------------------------


class BillingCustomerApi(APIView):
    permission_classes = [HasStorefrontServerScope]

    @extend_schema(
        operation_id="billing_customers_put",
        request=s.CustomerIn,
        responses={200: s.CustomerOut, 409: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def put(self, request, customer_id: str):
        if len(customer_id) > 100:
            raise Invalid(
                "invalid_request",
                "customer_id is too long.",
                fields={"customer_id": ["At most 100 characters."]},
            )
        data = parse(s.CustomerIn, request.data)
        if data.get("test_clock") is not None:
            data["test_clock"] = str(data["test_clock"])
        with database_input_errors():
            result = services.customer_upsert(customer_id=customer_id, fields=dict(data))
        return Response(presenters.customer_body(result.customer))

    @extend_schema(
        operation_id="billing_customers_get",
        responses={200: s.CustomerOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, customer_id: str):
        return Response(presenters.customer_body(selectors.customer_get(customer_id)))


# --- subscriptions ----------------------------------------------------------------------


class SubscriptionCollectionApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_create",
        request=s.SubscriptionIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: s.SubscriptionOut,
            402: ErrorOut,
            404: ErrorOut,
            409: ErrorOut,
            422: ErrorOut,
            **ERRORS,
        },
        tags=TAGS,
    )
    @idempotent(required=True)
    def post(self, request):
        data = parse(s.SubscriptionIn, request.data)
        customer_id = resolve_customer_id(request.user, data.get("customer_id"))
        if not customer_id:
            raise Invalid(
                "invalid_request",
                "customer_id is required.",
                fields={"customer_id": ["This field is required."]},
            )
        sub = services.subscription_create(
            customer_id=customer_id,
            plan_code=data["plan"],
            coupon_code=(data.get("coupon_code") or "").strip() or None,
            trial=data.get("trial"),
            idempotency=_idempotency(request),
        )
        return _subscription_response(sub, status=201)

    @extend_schema(
        operation_id="billing_subscriptions_list",
        parameters=[OpenApiParameter("customer_id", str, required=False)],
        responses={200: s.SubscriptionListOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request):
        query = parse(s.SubscriptionListQuery, request.query_params)
        customer_id = resolve_customer_id(request.user, query.get("customer_id"))
        if not customer_id:
            raise Invalid(
                "invalid_request",
                "customer_id is required.",
                fields={"customer_id": ["This field is required."]},
            )
        subs = list(selectors.subscriptions_for_customer(customer_id)[:100])
        latest = selectors.latest_invoice_ids([x.pk for x in subs])
        return Response(
            {"results": [presenters.subscription_body(x, latest.get(x.pk)) for x in subs]}
        )


class SubscriptionDetailApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_get",
        responses={200: s.SubscriptionOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, sub_id: str):
        sub = selectors.subscription_get(sub_id)
        _own(request, sub.customer.customer_id)
        return _subscription_response(sub)


class SubscriptionPreviewChangeApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_preview_change",
        request=s.PreviewIn,
        responses={200: s.PreviewOut, 404: ErrorOut, 422: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, sub_id: str):
        data = parse(s.PreviewIn, request.data)
        _own(request, selectors.subscription_get(sub_id).customer.customer_id)
        preview = services.subscription_preview_change(
            sub_id=sub_id, plan_code=data["plan"], proration_date=data.get("proration_date")
        )
        return Response(presenters.preview_body(preview))


class SubscriptionChangeApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_change",
        request=s.ChangeIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            200: s.SubscriptionOut,
            402: ErrorOut,
            404: ErrorOut,
            409: ErrorOut,
            422: ErrorOut,
            **ERRORS,
        },
        tags=TAGS,
    )
    @idempotent(required=True)
    def post(self, request, sub_id: str):
        data = parse(s.ChangeIn, request.data)
        _own(request, selectors.subscription_get(sub_id).customer.customer_id)
        sub = services.subscription_change(
            sub_id=sub_id, plan_code=data["plan"], proration_date=data.get("proration_date")
        )
        return _subscription_response(sub)


class SubscriptionCancelApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_cancel",
        request=s.CancelIn,
        responses={200: s.SubscriptionOut, 404: ErrorOut, 409: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, sub_id: str):
        data = parse(s.CancelIn, request.data)
        _own(request, selectors.subscription_get(sub_id).customer.customer_id)
        services.subscription_cancel(sub_id=sub_id, at_period_end=data["at_period_end"])
        return _subscription_response(selectors.subscription_get(sub_id))


class SubscriptionResumeApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_subscriptions_resume",
        request=None,
        responses={200: s.SubscriptionOut, 404: ErrorOut, 422: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request, sub_id: str):
        _own(request, selectors.subscription_get(sub_id).customer.customer_id)
        services.subscription_resume(sub_id=sub_id)
        return _subscription_response(selectors.subscription_get(sub_id))


# --- invoices ---------------------------------------------------------------------------


class InvoiceListApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_invoices_list",
        parameters=[
            OpenApiParameter("customer_id", str, required=False),
            OpenApiParameter("limit", int, required=False),
        ],
        responses={200: s.InvoiceListOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request):
        params = request.query_params.copy()
        if request.user.kind == "customer":
            params.setdefault("customer_id", request.user.customer_id)
        query = parse(s.InvoiceListQuery, params)
        customer_id = resolve_customer_id(request.user, query["customer_id"]) or ""
        invoices = selectors.invoices_for_customer(customer_id)[: query["limit"]]
        return Response({"results": [presenters.invoice_body(x) for x in invoices]})


class InvoiceDetailApi(APIView):
    permission_classes = [HasStorefrontScope]

    @extend_schema(
        operation_id="billing_invoices_get",
        responses={200: s.InvoiceOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, invoice_id: str):
        invoice = selectors.invoice_get(invoice_id)
        _own(request, invoice.customer.customer_id)
        return Response(presenters.invoice_body(invoice))


class InvoiceRefundAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_billing_invoices_refund",
        request=s.RefundIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.CreditNoteOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    @idempotent(required=True)
    def post(self, request, invoice_id: str):
        data = parse(s.RefundIn, request.data)
        invoice = selectors.invoice_get(invoice_id)
        amount = data.get("amount")
        minor = None if amount is None else s.minor(amount, invoice.currency, "amount")
        note = services.invoice_refund(
            invoice_id=invoice.pk, amount_minor=minor, reason=data.get("reason", "")
        )
        return Response(presenters.credit_note_body(note), status=201)


# --- test clocks ------------------------------------------------------------------------


class TestClockCollectionAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_billing_test_clocks_create",
        request=s.TestClockIn,
        responses={201: s.TestClockOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def post(self, request):
        data = parse(s.TestClockIn, request.data)
        clock = testclocks.clock_create(frozen_time=data["frozen_time"], name=data.get("name", ""))
        return Response(presenters.clock_body(clock), status=201)


class TestClockDetailAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_billing_test_clocks_get",
        responses={200: s.TestClockOut, 404: ErrorOut, **ERRORS},
        tags=TAGS,
    )
    def get(self, request, clock_id: str):
        return Response(presenters.clock_body(testclocks.clock_get(clock_id=clock_id)))


class TestClockAdvanceAdminApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_billing_test_clocks_advance",
        request=s.TestClockAdvanceIn,
        responses={
            200: s.TestClockOut,
            202: s.TestClockOut,
            404: ErrorOut,
            409: ErrorOut,
            **ERRORS,
        },
        tags=TAGS,
    )
    def post(self, request, clock_id: str):
        data = parse(s.TestClockAdvanceIn, request.data)
        testclocks.clock_get(clock_id=clock_id)
        clock = testclocks.clock_advance(clock_id=clock_id, frozen_time=data["frozen_time"])
        status = 200 if clock.status == "ready" else 202
        return Response(presenters.clock_body(clock), status=status)
