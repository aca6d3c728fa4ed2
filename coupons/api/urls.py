from django.urls import path

from coupons.api import admin_views, views

urlpatterns = [
    path("coupons/validate", views.CouponValidateApi.as_view(), name="coupons-validate"),
    path("coupons/apply", views.CouponApplyApi.as_view(), name="coupons-apply"),
    path("promotions/evaluate", views.PromotionEvaluateApi.as_view(), name="promotions-evaluate"),
    path("orders/<str:order_id>/confirm", views.OrderConfirmApi.as_view(), name="orders-confirm"),
    path("orders/<str:order_id>/release", views.OrderReleaseApi.as_view(), name="orders-release"),
    path("orders/<str:order_id>/return", views.OrderReturnApi.as_view(), name="orders-return"),
    path("admin/coupons", admin_views.CouponCollectionApi.as_view(), name="admin-coupons"),
    path(
        "admin/coupons/<str:code>",
        admin_views.CouponDetailApi.as_view(),
        name="admin-coupon-detail",
    ),
]
