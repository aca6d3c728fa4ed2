"""Input and output of the bulk generation endpoints (API.md "bulk-generate")."""

from __future__ import annotations

from rest_framework import serializers

from coupons.api.admin_serializers import MAX_POSITIVE_INT, ValidityField
from coupons.codebatches.models import (
    MAX_CODE_LENGTH,
    MAX_COUNT,
    MAX_PREFIX_LENGTH,
    MIN_CODE_LENGTH,
)


class BulkGenerateIn(serializers.Serializer):
    coupon = serializers.CharField(max_length=64, help_text="The coupon's code.")
    prefix = serializers.CharField(
        max_length=MAX_PREFIX_LENGTH,
        trim_whitespace=True,
        help_text="1-20 Crockford symbols (digits, A-Z without I, L, O, U); stored upper case.",
    )
    count = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_COUNT,
        help_text="How many codes (1 to 1,000,000). With customer_ids: their number, or "
        "leave it out.",
    )
    max_uses_per_code = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_POSITIVE_INT,
        allow_null=True,
        default=1,
        help_text="Uses per code; null for unlimited.",
    )
    code_length = serializers.IntegerField(
        required=False,
        min_value=MIN_CODE_LENGTH,
        max_value=MAX_CODE_LENGTH,
        default=MIN_CODE_LENGTH,
        help_text="Random symbols after the prefix (12 = 60 bits).",
    )
    expires_at = ValidityField(
        end_of_day=True,
        required=False,
        allow_null=True,
        help_text="Expiry of every code; a bare date means through the end of that day.",
    )
    customer_ids = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_empty=False,
        max_length=MAX_COUNT,
        help_text="Targeted campaign: one code bound to each of these customers.",
    )

    class Meta:
        ref_name = "CodeBatchCreate"

    def validate_customer_ids(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each customer id at most once.")
        return value


class BatchAcceptedOut(serializers.Serializer):
    batch_id = serializers.UUIDField()
    status = serializers.CharField()
    requested = serializers.IntegerField()
    generated = serializers.IntegerField()

    class Meta:
        ref_name = "CodeBatchAccepted"


class BatchOut(BatchAcceptedOut):
    coupon = serializers.CharField()
    prefix = serializers.CharField()
    code_length = serializers.IntegerField()
    max_uses_per_code = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    targeted = serializers.BooleanField(help_text="Codes are bound to given customers.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "CodeBatch"


def accepted_body(batch) -> dict:
    return {
        "batch_id": str(batch.pk),
        "status": batch.status,
        "requested": batch.requested,
        "generated": batch.generated,
    }


def batch_body(batch) -> dict:
    iso = lambda moment: moment.isoformat() if moment else None  # noqa: E731
    return {
        **accepted_body(batch),
        "coupon": batch.coupon.code,
        "prefix": batch.prefix,
        "code_length": batch.code_length,
        "max_uses_per_code": batch.max_uses_per_code,
        "expires_at": iso(batch.expires_at),
        "targeted": batch.targeted,
        "created_at": iso(batch.created_at),
        "finished_at": iso(batch.finished_at),
        "error": batch.error,
    }
