"""Marketing screens for coupon analytics: the analytics page (KPIs, charts, top coupons,
CSV downloads) and the what-if simulation (a form per coupon, the runs with progress).

The analytics page is the "Daily coupon facts" entry of the admin index: the facts are
the page's data, and a raw list of them would help nobody. Who may see it: anyone with
view permission on the facts (superusers, and the marketing group through the analytics
migration). Everything here is read-only; the simulation is started through
`analytics.services.simulation_start` and run by its Celery task.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin
from coupons.analytics import services
from coupons.analytics.admin_views import (
    CSV_KINDS,
    SimulationForm,
    csv_download,
    filter_form,
    page_data,
    simulation_result,
    simulation_rows,
)
from coupons.analytics.models import DailyCouponFact, SimulationRun, SimulationStatus
from coupons.models import Coupon

VIEW_PERMISSION = "analytics.view_dailycouponfact"
SIMULATE_PERMISSION = "analytics.add_simulationrun"
RUNNING = (SimulationStatus.QUEUED, SimulationStatus.RUNNING)
RECENT_RUNS = 5


def can_simulate(request) -> bool:
    return request.user.has_perm(SIMULATE_PERMISSION)


@admin.register(DailyCouponFact)
class AnalyticsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The analytics page lives at this model's list URL (and is named
    `admin:analytics_dashboard` too); `csv/` serves its downloads."""

    def get_urls(self):
        site = self.admin_site
        return [
            path("", site.admin_view(self.changelist_view), name="analytics_dashboard"),
            path("csv/", site.admin_view(self.csv_view), name="analytics_csv"),
            *super().get_urls(),
        ]

    def _check(self, request) -> None:
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied

    def changelist_view(self, request, extra_context=None):
        self._check(request)
        form = filter_form(request.GET)
        data = page_data(form) if form.is_valid() else None
        coupon = form.cleaned_data.get("coupon") if data else None
        query = form.query() if data else ""
        base = reverse("admin:analytics_csv")
        context = {
            **self.admin_site.each_context(request),
            "title": "Coupon analytics",
            "subtitle": data["scope"] if data else None,
            "opts": self.opts,
            "form": form,
            "data": data,
            "coupon": coupon,
            "csv_links": [
                {
                    "label": "Download CSV (daily)",
                    "kind": "daily",
                    "url": f"{base}?{query}&kind=daily",
                },
                *(
                    [
                        {
                            "label": "Download CSV (top coupons)",
                            "kind": "top",
                            "url": f"{base}?{query}&kind=top",
                        }
                    ]
                    if data and data["top"] is not None
                    else []
                ),
            ]
            if data
            else [],
            "simulate_form": SimulationForm() if coupon and can_simulate(request) else None,
            "simulate_url": reverse("admin:analytics_simulationrun_simulate", args=[coupon.pk])
            if coupon
            else None,
            "coupon_change_url": reverse("admin:coupons_coupon_change", args=[coupon.pk])
            if coupon and request.user.has_perm("coupons.view_coupon")
            else None,
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def csv_view(self, request):
        self._check(request)
        form = filter_form(request.GET)
        kind = request.GET.get("kind", "daily")
        if kind not in CSV_KINDS:
            form.add_error(None, f"kind must be one of {', '.join(CSV_KINDS)}.")
        if not form.is_valid():
            errors = "\n".join(
                f"{field}: {message}"
                for field, messages_ in form.errors.items()
                for message in messages_
            )
            return HttpResponse(
                f"Bad filters:\n{errors}\n", status=400, content_type="text/plain; charset=utf-8"
            )
        return csv_download(form, kind)


@admin.register(SimulationRun)
class SimulationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Runs are created by the what-if form (`simulate/<coupon id>/`) and written only by
    the task; their pages reload themselves while a run is queued or running."""

    list_display = (
        "id",
        "coupon",
        "days",
        "status",
        "progress_bar",
        "carts",
        "expected_redemptions",
        "discount",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "created_at")
    list_select_related = ("coupon", "requested_by")
    search_fields = ["coupon__code"]
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    fields = (
        "coupon",
        "days",
        "status",
        "progress_bar",
        "carts",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
    change_form_template = "admin/analytics/simulationrun/change_form.html"
    change_list_template = "admin/analytics/simulationrun/change_list.html"
    refresh_seconds = 2

    @admin.display(description="progress")
    def progress_bar(self, obj: SimulationRun) -> str:
        return format_html(
            '<progress value="{}" max="1" style="width:10em"></progress> {}%',
            obj.progress,
            round(obj.progress * 100),
        )

    @admin.display(description="carts")
    def carts(self, obj: SimulationRun) -> str:
        return f"{obj.carts_done:,}/{obj.carts_total:,}"

    @admin.display(description="expected redemptions")
    def expected_redemptions(self, obj: SimulationRun) -> str:
        result = simulation_result(obj)
        return result["expected_redemptions"] if result else "—"

    @admin.display(description="discount cost")
    def discount(self, obj: SimulationRun) -> str:
        result = simulation_result(obj)
        return result["discount"] if result else "—"

    def changelist_view(self, request, extra_context=None):
        running = SimulationRun.objects.filter(status__in=RUNNING).exists()
        extra = {
            "refresh_seconds": self.refresh_seconds if running else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if run is not None:
            result = simulation_result(run) if run.status == SimulationStatus.DONE else None
            extra.update(
                refresh_seconds=self.refresh_seconds if run.status in RUNNING else None,
                run=run,
                result=result,
                result_rows=simulation_rows(result) if result else [],
                analytics_url=f"{reverse('admin:analytics_dashboard')}?coupon={run.coupon.code}"
                if request.user.has_perm(VIEW_PERMISSION)
                else None,
                simulate_url=reverse("admin:analytics_simulationrun_simulate", args=[run.coupon_id])
                if can_simulate(request)
                else None,
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    # --- the what-if form ---

    def get_urls(self):
        view = self.admin_site.admin_view(self.simulate_view)
        return [
            path("simulate/<int:coupon_id>/", view, name="analytics_simulationrun_simulate"),
            *super().get_urls(),
        ]

    def simulate_view(self, request, coupon_id: int):
        """GET: the form and this coupon's last runs; POST: start a run, go to its page."""
        if not can_simulate(request):
            raise PermissionDenied
        coupon = get_object_or_404(Coupon, pk=coupon_id)
        form = SimulationForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                run = services.simulation_start(
                    coupon=coupon, days=form.cleaned_data["days"], requested_by=request.user
                )
            except ValidationError as exc:
                form.add_error("days", exc.messages)
            else:
                self.message_user(
                    request,
                    f"What-if run of {coupon.code} over the last "
                    f"{run.days} days started; this page follows it.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:analytics_simulationrun_change", args=[run.pk])
                )
        runs = (
            SimulationRun.objects.filter(coupon=coupon)
            .select_related("requested_by")
            .order_by("-created_at")[:RECENT_RUNS]
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"What-if: {coupon.code}",
            "opts": self.opts,
            "coupon": coupon,
            "coupon_opts": Coupon._meta,
            "form": form,
            "runs": [{"run": run, "result": simulation_result(run)} for run in runs],
            "analytics_url": f"{reverse('admin:analytics_dashboard')}?coupon={coupon.code}"
            if request.user.has_perm(VIEW_PERMISSION)
            else None,
        }
        return TemplateResponse(request, "admin/analytics/simulate.html", context)
