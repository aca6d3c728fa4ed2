"""The product's URLs plus `/bench/bare`: the cheapest possible Django view through the
same gunicorn and middleware, the ceiling every API number is compared with."""

from django.http import JsonResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as product_urlpatterns


def bare_view(request):
    return JsonResponse({"ok": True})


urlpatterns = [*product_urlpatterns, path("bench/bare", bare_view, name="bench-bare")]
