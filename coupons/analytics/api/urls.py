from django.urls import path

from coupons.analytics.api import views

urlpatterns = [
    path(
        "admin/coupons/<str:code>/stats", views.CouponStatsApi.as_view(), name="admin-coupon-stats"
    ),
]
