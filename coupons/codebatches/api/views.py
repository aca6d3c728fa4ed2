"""Admin API for bulk code generation (scope admin): start a batch, follow it, export it.
Each view validates, calls one service or selector, and responds."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsing import parse
from core.api.schema import IDEMPOTENCY_HEADER, ErrorOut
from core.auth import HasAdminScope
from core.errors import NotFound, database_input_errors
from core.idempotency import HEADER, fingerprint, idempotent
from coupons.codebatches import selectors, services
from coupons.codebatches.api import serializers as s

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut}
CONSTRAINT_FIELDS = {"codebatch_requested_in_range": "count"}


class CSVRenderer(BaseRenderer):
    """Lets a client ask for `Accept: text/csv`; errors still go out as JSON text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, None, renderer_context)


def _batch_or_404(batch_id):
    batch = selectors.batch_get(batch_id)
    if batch is None:
        raise NotFound("batch_not_found", "No code batch with this id.")
    return batch


class CodeBatchCreateApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_code_batches_create",
        tags=["admin"],
        request=s.BulkGenerateIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: s.BatchAcceptedOut, 404: ErrorOut, 409: ErrorOut, **ERRORS},
        description="Start generating codes in the background. The same "
        "Idempotency-Key returns the same batch (also when the "
        "first response was lost).",
    )
    @idempotent(required=True)
    def post(self, request):
        data = parse(s.BulkGenerateIn, request.data)
        coupon = selectors.coupon_get_by_code(data["coupon"])
        if coupon is None:
            raise NotFound(
                "coupon_not_found",
                "No coupon with this code.",
                fields={"coupon": ["Unknown coupon."]},
            )
        try:
            with database_input_errors(CONSTRAINT_FIELDS):
                batch = services.batch_create(
                    coupon=coupon,
                    prefix=data["prefix"],
                    count=data.get("count"),
                    code_length=data["code_length"],
                    max_uses_per_code=data["max_uses_per_code"],
                    expires_at=data.get("expires_at"),
                    customer_ids=data.get("customer_ids") or (),
                    idempotency_key=request.headers.get(HEADER, "").strip(),
                    idempotency_principal=request.user.ident,
                    request_fingerprint=fingerprint(request.method, request.path, request.data),
                )
        except DjangoValidationError as exc:  # a 400 the Idempotency-Key replays
            raise ValidationError(exc.message_dict) from None
        return Response(s.accepted_body(batch), status=202)


class CodeBatchDetailApi(APIView):
    permission_classes = [HasAdminScope]

    @extend_schema(
        operation_id="admin_code_batches_get",
        tags=["admin"],
        responses={200: s.BatchOut, 404: ErrorOut, **ERRORS},
    )
    def get(self, request, batch_id):
        return Response(s.batch_body(_batch_or_404(batch_id)))


class CodeBatchCodesCsvApi(APIView):
    permission_classes = [HasAdminScope]
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="admin_code_batches_codes_csv",
        tags=["admin"],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="code,max_uses,expires_at,customer_id — one line per "
                "code, streamed (what exists so far while generating).",
            ),
            404: ErrorOut,
            **ERRORS,
        },
    )
    def get(self, request, batch_id):
        batch = _batch_or_404(batch_id)
        return csv_response(batch)


def csv_response(batch) -> StreamingHttpResponse:
    """The batch's codes as a streamed CSV download (also used by the Django admin)."""
    response = StreamingHttpResponse(
        selectors.batch_codes_csv(batch), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="codes-{batch.prefix}-{batch.pk}.csv"'
    response["X-Batch-Status"] = batch.status
    return response
