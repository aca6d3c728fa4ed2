"""A bulk code batch: the request (coupon, prefix, how many, the codes' terms) and its
progress. The codes themselves are `coupons.Code` rows pointing back here (`batch`), so
the truth about progress is `count(*)` of those rows; `generated` is a copy written in
the same transaction as each chunk of codes, for the admin and the status endpoint."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, IntegerField, Q

from core.models import IdempotentCreation

MAX_COUNT = 1_000_000
MIN_CODE_LENGTH = 12  # 12 Crockford symbols = 60 bits from the CSPRNG
MAX_CODE_LENGTH = 24
MAX_PREFIX_LENGTH = 20


class CodeBatchQuerySet(models.QuerySet):
    def without_customer_ids(self):
        """Batches without their customer list (up to a million ids, tens of MB as Python strings):
        its length is counted by PostgreSQL instead (`customer_count`)."""
        return self.defer("customer_ids").annotate(
            customer_count=Func(
                F("customer_ids"), function="cardinality", output_field=IntegerField()
            )
        )


class CodeBatch(IdempotentCreation):
    class Status(models.TextChoices):
        GENERATING = "generating", "Generating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    coupon = models.ForeignKey(
        "coupons.Coupon", on_delete=models.PROTECT, related_name="code_batches"
    )
    prefix = models.CharField(max_length=MAX_PREFIX_LENGTH)
    requested = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_COUNT)]
    )
    generated = models.PositiveIntegerField(default=0)
    code_length = models.PositiveSmallIntegerField(
        default=MIN_CODE_LENGTH,
        validators=[MinValueValidator(MIN_CODE_LENGTH), MaxValueValidator(MAX_CODE_LENGTH)],
        help_text="Random symbols after the prefix.",
    )
    max_uses_per_code = models.PositiveIntegerField(
        null=True, blank=True, default=1, help_text="Blank: unlimited uses per code."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Targeted campaigns: the storefront ids of the customers to bind one code each to.
    # Kept on the batch so a resumed run knows who still lacks a code.
    customer_ids = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.GENERATING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # idempotency_principal, _key and _fingerprint: core.models.IdempotentCreation.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CodeBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "code batch"
        verbose_name_plural = "code batches"
        indexes = [
            # The beat job's question: which batches are generating and quiet?
            models.Index(
                fields=["updated_at"],
                name="codebatch_generating_idx",
                condition=Q(status="generating"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(generated__lte=F("requested")),
                name="codebatch_generated_within_requested",
            ),
            models.CheckConstraint(
                condition=Q(requested__gte=1) & Q(requested__lte=MAX_COUNT),
                name="codebatch_requested_in_range",
            ),
            *IdempotentCreation.Meta.constraints,  # "<model>_idempotency_key_unique"
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… × {self.requested:,} ({self.status})"  # noqa: RUF001 - a real multiplication sign in the admin

    @property
    def targeted(self) -> bool:
        count = getattr(self, "customer_count", None)
        return bool(count) if count is not None else bool(self.customer_ids)

    @property
    def percent(self) -> int:
        return 100 * self.generated // self.requested if self.requested else 0
