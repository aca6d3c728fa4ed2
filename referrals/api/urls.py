from django.urls import path

from referrals.api import views as v

urlpatterns = [
    path("referrals/codes", v.ReferralCodeApi.as_view(), name="referral-codes"),
    path("referrals/attribute", v.ReferralAttributeApi.as_view(), name="referrals-attribute"),
    path(
        "referrals/customers/<str:customer_id>",
        v.ReferralCustomerApi.as_view(),
        name="referrals-customer",
    ),
    path("admin/referrals/stats", v.ReferralStatsAdminApi.as_view(), name="admin-referrals-stats"),
]
