"""Marketing screens for bulk codes: "Generate codes…" on the coupon list leads to a form
that starts a batch (services.batch_create); the batch list and page show live progress
and offer the codes as a streamed CSV. Batches are written only by the service and the
task, so here they are read-only."""

from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin
from coupons.codebatches import services
from coupons.codebatches.api.views import csv_response
from coupons.codebatches.models import MAX_CODE_LENGTH, MAX_COUNT, MIN_CODE_LENGTH, CodeBatch
from coupons.models import Coupon

ADD_PERMISSION = "codebatches.add_codebatch"
CSV_HEADERS = {"customer_id", "customer", "id", "external_id", "user_id"}


def _csv_customer_ids(upload) -> list[str]:
    """The first column of each row; a header row naming it is skipped."""
    text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
    ids: list[str] = []
    try:
        for number, row in enumerate(csv.reader(text), start=1):
            if not row or not row[0].strip():
                continue
            if number == 1 and row[0].strip().lower() in CSV_HEADERS:
                continue
            ids.append(row[0].strip())
            if len(ids) > MAX_COUNT:
                raise ValidationError(f"At most {MAX_COUNT:,} customers per batch.")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(f"Not a UTF-8 CSV file ({exc}).") from None
    finally:
        text.detach()
    if not ids:
        raise ValidationError("The file has no customer ids.")
    return ids


class GenerateCodesForm(forms.Form):
    # The form metaclass moves declared fields to base_fields, so BaseForm.prefix (the HTML
    # name prefix, typed str | None in the stubs) is not replaced by this field.
    prefix = forms.CharField(  # type: ignore[assignment]
        max_length=20,
        help_text="1-20 digits or letters, without I, L, O and U (codes are Crockford "
        "base32: a typed O reads as 0, I and L as 1). Stored upper case.",
    )
    count = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_COUNT,
        help_text=f"1 to {MAX_COUNT:,}. Leave blank with a customer file: one code each.",
    )
    code_length = forms.IntegerField(
        min_value=MIN_CODE_LENGTH,
        max_value=MAX_CODE_LENGTH,
        initial=MIN_CODE_LENGTH,
        help_text="Random symbols after the prefix (12 = 60 random bits).",
    )
    max_uses_per_code = forms.IntegerField(
        required=False, min_value=1, initial=1, label="Uses per code", help_text="Blank: unlimited."
    )
    expires_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, label="Expiry", help_text="Optional."
    )
    customers_csv = forms.FileField(
        required=False,
        label="Customer ids (CSV)",
        help_text="Optional, for a targeted campaign: a CSV whose first column holds "
        "customer ids (a header row is fine); each gets one code bound to them.",
    )

    field_for = {"customer_ids": "customers_csv"}

    def clean_customers_csv(self):
        upload = self.cleaned_data.get("customers_csv")
        return services.customer_ids_clean(_csv_customer_ids(upload)) if upload else []

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.batch_fields = services.batch_check(
                prefix=cleaned["prefix"],
                count=cleaned.get("count"),
                code_length=cleaned["code_length"],
                max_uses_per_code=cleaned.get("max_uses_per_code"),
                expires_at=cleaned.get("expires_at"),
                customer_ids=cleaned.get("customers_csv") or [],
            )
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                self.add_error(self.field_for.get(key, key), errors)
        return cleaned


@admin.action(description="Generate codes…")
def generate_codes(modeladmin, request, queryset):
    """On the coupon list: go to the generation form for the one selected coupon."""
    if not request.user.has_perm(ADD_PERMISSION):
        modeladmin.message_user(request, "You may not generate codes.", messages.ERROR)
        return None
    ids = list(queryset.values_list("pk", flat=True)[:2])
    if len(ids) != 1:
        modeladmin.message_user(
            request, "Select exactly one coupon to generate codes for.", messages.WARNING
        )
        return None
    return HttpResponseRedirect(reverse("admin:codebatches_codebatch_generate", args=ids))


@admin.register(CodeBatch)
class CodeBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Created only through "Generate codes…" (a coupon action), written only by the task."""

    list_display = (
        "short_id",
        "coupon",
        "prefix",
        "status",
        "progress",
        "requested",
        "generated",
        "targeted",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "created_at")
    list_select_related = ("coupon", "created_by")
    search_fields = ["prefix", "coupon__code"]
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    actions = ["resume"]
    fields = (
        "coupon",
        "prefix",
        "code_length",
        "status",
        "progress",
        "requested",
        "generated",
        "max_uses_per_code",
        "expires_at",
        "targeted_count",
        "error",
        "created_by",
        "created_at",
        "updated_at",
        "finished_at",
        "download",
    )
    readonly_fields = fields
    change_form_template = "admin/codebatches/codebatch/change_form.html"
    change_list_template = "admin/codebatches/codebatch/change_list.html"
    # Refresh interval of the pages while a batch is generating, in seconds.
    refresh_seconds = 2

    def has_resume_permission(self, request):
        return request.user.has_perm(ADD_PERMISSION)

    def get_queryset(self, request):
        # The customer list of a targeted batch can be a million ids: count it in
        # PostgreSQL, never load it.
        return super().get_queryset(request).without_customer_ids()

    @admin.display(description="batch")
    def short_id(self, obj: CodeBatch) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="progress")
    def progress(self, obj: CodeBatch) -> str:
        return format_html(
            '<progress value="{}" max="{}" style="width:10em"></progress> {}%',
            obj.generated,
            obj.requested,
            obj.percent,
        )

    @admin.display(description="targeted", boolean=True)
    def targeted(self, obj: CodeBatch) -> bool:
        return obj.targeted

    @admin.display(description="targeted customers")
    def targeted_count(self, obj: CodeBatch) -> str:
        count = getattr(obj, "customer_count", None)  # annotated by get_queryset
        return f"{count:,}" if count else "—"

    @admin.display(description="codes")
    def download(self, obj: CodeBatch) -> str:
        url = reverse("admin:codebatches_codebatch_csv", args=[obj.pk])
        label = (
            "Download CSV"
            if obj.status == CodeBatch.Status.DONE
            else "Download CSV (the codes so far)"
        )
        return format_html('<a class="button" href="{}">{}</a>', url, label)

    def changelist_view(self, request, extra_context=None):
        extra = {
            "refresh_seconds": self.refresh_seconds
            if CodeBatch.objects.filter(status=CodeBatch.Status.GENERATING).exists()
            else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        extra = {
            "refresh_seconds": self.refresh_seconds
            if batch is not None and batch.status == CodeBatch.Status.GENERATING
            else None,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    # --- extra pages ---

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "generate/<int:coupon_id>/",
                site.admin_view(self.generate_view),
                name="codebatches_codebatch_generate",
            ),
            path(
                "<uuid:batch_id>/codes.csv",
                site.admin_view(self.csv_view),
                name="codebatches_codebatch_csv",
            ),
            *super().get_urls(),
        ]

    def generate_view(self, request, coupon_id: int):
        if not request.user.has_perm(ADD_PERMISSION):
            raise PermissionDenied
        coupon = get_object_or_404(Coupon, pk=coupon_id)
        form = GenerateCodesForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            f = form.batch_fields
            batch = services.batch_create(
                coupon=coupon,
                prefix=f["prefix"],
                count=f["requested"],
                code_length=f["code_length"],
                max_uses_per_code=f["max_uses_per_code"],
                expires_at=f["expires_at"],
                customer_ids=f["customer_ids"],
                created_by=request.user,
            )
            self.message_user(
                request,
                f"Generating {batch.requested:,} codes for "
                f"{coupon.code}; this page follows the progress.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:codebatches_codebatch_change", args=[batch.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate codes for {coupon.code}",
            "opts": self.opts,
            "coupon": coupon,
            "coupon_opts": Coupon._meta,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/codebatches/generate.html", context)

    def csv_view(self, request, batch_id):
        batch = get_object_or_404(CodeBatch.objects.without_customer_ids(), pk=batch_id)
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        return csv_response(batch)

    # --- actions ---

    @admin.action(description="Resume selected failed batches", permissions=["resume"])
    def resume(self, request, queryset):
        resumed = sum(
            services.batch_resume(batch_id=pk)
            for pk in queryset.filter(status=CodeBatch.Status.FAILED).values_list("pk", flat=True)
        )
        self.message_user(request, f"Resumed {resumed} batch(es).", messages.SUCCESS)
