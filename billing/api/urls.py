from django.urls import path

from billing.api import document_views
from billing.api import views as v

urlpatterns = [
    path("admin/plans", v.PlanCollectionAdminApi.as_view(), name="admin-plans"),
    path("admin/plans/<str:code>", v.PlanDetailAdminApi.as_view(), name="admin-plan-detail"),
    path("plans", v.PlanListApi.as_view(), name="plans"),
    path(
        "billing/customers/<str:customer_id>",
        v.BillingCustomerApi.as_view(),
        name="billing-customer",
    ),
    path(
        "billing/subscriptions",
        v.SubscriptionCollectionApi.as_view(),
        name="billing-subscriptions",
    ),
    path(
        "billing/subscriptions/<str:sub_id>",
        v.SubscriptionDetailApi.as_view(),
        name="billing-subscription",
    ),
    path(
        "billing/subscriptions/<str:sub_id>/preview-change",
        v.SubscriptionPreviewChangeApi.as_view(),
        name="billing-subscription-preview-change",
    ),
    path(
        "billing/subscriptions/<str:sub_id>/change",
        v.SubscriptionChangeApi.as_view(),
        name="billing-subscription-change",
    ),
    path(
        "billing/subscriptions/<str:sub_id>/cancel",
        v.SubscriptionCancelApi.as_view(),
        name="billing-subscription-cancel",
    ),
    path(
        "billing/subscriptions/<str:sub_id>/resume",
        v.SubscriptionResumeApi.as_view(),
        name="billing-subscription-resume",
    ),
    path("billing/invoices", v.InvoiceListApi.as_view(), name="billing-invoices"),
    path("billing/invoices/<str:invoice_id>", v.InvoiceDetailApi.as_view(), name="billing-invoice"),
    path(
        "billing/invoices/<str:invoice_id>/pdf",
        document_views.InvoicePdfApi.as_view(),
        name="billing-invoice-pdf",
    ),
    path(
        "admin/billing/invoices/<str:invoice_id>/refund",
        v.InvoiceRefundAdminApi.as_view(),
        name="admin-billing-invoice-refund",
    ),
    path(
        "admin/billing/test-clocks",
        v.TestClockCollectionAdminApi.as_view(),
        name="admin-billing-test-clocks",
    ),
    path(
        "admin/billing/test-clocks/<str:clock_id>",
        v.TestClockDetailAdminApi.as_view(),
        name="admin-billing-test-clock",
    ),
    path(
        "admin/billing/test-clocks/<str:clock_id>/advance",
        v.TestClockAdvanceAdminApi.as_view(),
        name="admin-billing-test-clock-advance",
    ),
]
