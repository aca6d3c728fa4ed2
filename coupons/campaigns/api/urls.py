"""Flash-sale campaigns and claims (API.md "Flash-sale claims")."""

from django.urls import path

from coupons.campaigns.api import views

urlpatterns = [
    path("admin/campaigns", views.CampaignCollectionApi.as_view(), name="admin-campaigns"),
    path("campaigns/<uuid:campaign_id>", views.CampaignDetailApi.as_view(), name="campaign-detail"),
    path(
        "campaigns/<uuid:campaign_id>/claim",
        views.CampaignClaimApi.as_view(),
        name="campaign-claim",
    ),
]
