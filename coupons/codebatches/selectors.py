"""Reads for code batches: the batch, its coupon by code, the codes for export."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from coupons.models import Code, Coupon
from coupons.selectors import normalize_code

from .models import CodeBatch

EXPORT_CHUNK = 5_000
CSV_HEADER = "code,max_uses,expires_at,customer_id\r\n"


def coupon_get_by_code(code: str) -> Coupon | None:
    return Coupon.objects.filter(code=normalize_code(code)).first()


def batch_get(batch_id: str | uuid.UUID) -> CodeBatch | None:
    try:
        return CodeBatch.objects.without_customer_ids().select_related("coupon").get(pk=batch_id)
    except (CodeBatch.DoesNotExist, ValueError):
        return None


def batch_codes_count(batch_id) -> int:
    """The truth about progress: the codes that exist (a crash never miscounts them)."""
    return Code.objects.filter(batch_id=batch_id).count()


def batch_codes_csv(batch: CodeBatch) -> Iterator[str]:
    """The batch's codes as CSV lines, read through a server-side cursor a few thousand
    rows at a time, so a million codes stream in constant memory. Codes are letters and
    digits and customer ids are quoted when needed, so lines are built by hand (faster
    than the csv module per row)."""
    yield CSV_HEADER
    rows = (
        Code.objects.filter(batch_id=batch.pk)
        .order_by("pk")
        .values_list("code", "max_uses", "expires_at", "customer__external_id")
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    lines = []
    for code, max_uses, expires_at, customer in rows:
        lines.append(
            f"{code},{'' if max_uses is None else max_uses},"
            f"{expires_at.isoformat() if expires_at else ''},"
            f"{_csv_cell(customer) if customer else ''}\r\n"
        )
        if len(lines) >= EXPORT_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    # A cell opening with = + - @ is a formula to a spreadsheet: neutralise it.
    return "'" + text if text[:1] in "=+-@" else text
