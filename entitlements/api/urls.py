from django.urls import path

from entitlements.api import views as v

urlpatterns = [
    path("admin/features", v.FeatureCollectionAdminApi.as_view(), name="admin-features"),
    path("entitlements/<str:customer_id>", v.EntitlementsApi.as_view(), name="entitlements"),
    path(
        "entitlements/<str:customer_id>/check",
        v.EntitlementCheckApi.as_view(),
        name="entitlements-check",
    ),
    path(
        "entitlements/<str:customer_id>/reserve",
        v.EntitlementReserveApi.as_view(),
        name="entitlements-reserve",
    ),
    path(
        "entitlements/<str:customer_id>/release",
        v.EntitlementReleaseApi.as_view(),
        name="entitlements-release",
    ),
    path("usage", v.UsageApi.as_view(), name="usage"),
    path(
        "admin/entitlements/<str:customer_id>/grants",
        v.GrantCollectionAdminApi.as_view(),
        name="admin-entitlement-grants",
    ),
    path(
        "admin/entitlements/<str:customer_id>/grants/<str:grant_id>/revoke",
        v.GrantRevokeAdminApi.as_view(),
        name="admin-entitlement-grant-revoke",
    ),
    path(
        "admin/entitlements/<str:customer_id>/events",
        v.EntitlementEventsAdminApi.as_view(),
        name="admin-entitlement-events",
    ),
]
