"""Factories and small helpers for the code batch tests."""

from __future__ import annotations

import factory

from coupons.codebatches.models import CodeBatch
from coupons.tests.factories import CouponFactory


class CodeBatchFactory(factory.django.DjangoModelFactory):
    """A batch as `batch_create` records it (nothing generated, no task queued)."""

    class Meta:
        model = CodeBatch

    coupon = factory.SubFactory(CouponFactory)
    prefix = "SPR"
    requested = 100
