from pathlib import Path

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import health

# No "View site" link in the admin header: this service has no site of its own, and the
# header already links the API docs and health (docs/decisions.md).
admin.site.site_url = None

FAVICON = (Path(__file__).resolve().parent.parent / "core/static/core/favicon.ico").read_bytes()


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    """/favicon.ico, which browsers ask for on any page (the admin links the SVG too)."""
    return HttpResponse(FAVICON, content_type="image/x-icon")


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("", include("django_prometheus.urls")),  # GET /metrics
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # codebatches first: its admin/coupons/bulk-generate would else match the coupon detail
    path("api/v1/", include("coupons.codebatches.api.urls")),
    path("api/v1/", include("coupons.campaigns.api.urls")),
    path("api/v1/", include("coupons.analytics.api.urls")),
    path("api/v1/", include("coupons.api.urls")),
    path("api/v1/", include("billing.webhooks.urls")),
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("entitlements.api.urls")),
    path("api/v1/", include("referrals.api.urls")),
]

handler400 = "core.api.errors.handler400"
handler403 = "core.api.errors.handler403"
handler404 = "core.api.errors.handler404"
handler500 = "core.api.errors.handler500"
