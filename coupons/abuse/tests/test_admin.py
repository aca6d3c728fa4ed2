"""The audit trail and alerts in the Django admin: automatic actions next to staff
changes, marketing can review alerts and re-enable an auto-disabled coupon."""

import pytest

from coupons.abuse import services as abuse_services
from coupons.abuse.models import AbuseAlert, AlertKind
from coupons.models import Coupon
from coupons.tests.factories import CouponFactory
from coupons.tests.test_admin import change_form

pytestmark = pytest.mark.django_db


def leaked(code: str = "LEAKED") -> Coupon:
    coupon = CouponFactory(code=code, percent_bp=1000)
    abuse_services.coupon_auto_disable(
        coupon_id=coupon.pk,
        kind=AlertKind.LEAKED_CODE,
        reason=f"Leaked code: public code {code} redeemed by 1001 unique customers within "
        "an hour (threshold 1000).",
        details={"code": code, "unique_customers": 1001, "threshold": 1000},
    )
    coupon.refresh_from_db()
    return coupon


def test_history_shows_the_automatic_disable_next_to_staff_edits(marketing_client):
    coupon = leaked()
    url = f"/admin/coupons/coupon/{coupon.pk}/change/"
    page = marketing_client.get(url)
    assert page.status_code == 200
    assert b"Disabled automatically" in page.content
    assert b"1001 unique customers" in page.content
    # A staff re-enable through the form...
    response = marketing_client.post(url, change_form(coupon, active="on", percent="10"))
    assert response.status_code == 302, response.content
    coupon.refresh_from_db()
    assert coupon.active
    assert not coupon.disabled_reason
    # ...and both changes are in the history, the staff one with its user.
    history = marketing_client.get(f"/admin/coupons/coupon/{coupon.pk}/history/")
    assert history.status_code == 200
    assert b"Automatic: Leaked code" in history.content
    assert b"mia" in history.content
    assert AbuseAlert.objects.get(kind=AlertKind.LEAKED_CODE).status == "reviewed"
    assert AbuseAlert.objects.filter(kind=AlertKind.REENABLED).exists()


def test_activate_action_reenables_with_the_users_name(admin_client):
    coupon = leaked("ACTION")
    response = admin_client.post(
        "/admin/coupons/coupon/", {"action": "activate", "_selected_action": [coupon.pk]}
    )
    assert response.status_code == 302
    coupon.refresh_from_db()
    assert coupon.active
    assert coupon.history.first().history_change_reason == "Activated by admin"
    assert AbuseAlert.objects.get(kind=AlertKind.REENABLED).message == "Re-enabled by admin"


def test_marketing_reviews_alerts(marketing_client):
    coupon = leaked("REVIEW")
    alert = AbuseAlert.objects.get(coupon=coupon)
    listing = marketing_client.get("/admin/abuse/abusealert/")
    assert listing.status_code == 200
    assert b"REVIEW" in listing.content
    assert marketing_client.get(f"/admin/abuse/abusealert/{alert.pk}/change/").status_code == 200
    response = marketing_client.post(
        "/admin/abuse/abusealert/", {"action": "mark_reviewed", "_selected_action": [alert.pk]}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "reviewed"
    assert alert.reviewed_by.username == "mia"
    assert marketing_client.get("/admin/abuse/abusealert/add/").status_code == 403


def test_saving_an_alert_writes_only_its_review(marketing_client, monkeypatch):
    from django.contrib import admin as django_admin

    from coupons.abuse.admin import AbuseAlertAdmin

    coupon = leaked("STALEALERT")
    alert = AbuseAlert.objects.get(coupon=coupon)
    url = f"/admin/abuse/abusealert/{alert.pk}/change/"
    # the finding repeats while the page is open (after the admin loaded the row)
    real = AbuseAlertAdmin.get_object

    def load_then_count_up(self, request, object_id, from_field=None):
        obj = real(self, request, object_id, from_field)
        AbuseAlert.objects.filter(pk=alert.pk).update(occurrences=5)
        return obj

    monkeypatch.setattr(
        django_admin.site._registry[AbuseAlert].__class__, "get_object", load_then_count_up
    )
    response = marketing_client.post(url, {"status": "dismissed"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.occurrences, alert.reviewed_by.username) == ("dismissed", 5, "mia")


def test_budget_and_abuse_settings_are_editable_in_the_form(admin_client):
    coupon = CouponFactory(code="FORMED", percent_bp=1000)
    url = f"/admin/coupons/coupon/{coupon.pk}/change/"
    response = admin_client.post(
        url,
        change_form(
            coupon,
            percent="10",
            budget="250.00",
            leak_threshold="50",
            farming_action="block",
            limit_by_identity="on",
        ),
    )
    assert response.status_code == 302, response.content
    coupon.refresh_from_db()
    assert (
        coupon.budget_minor,
        coupon.leak_threshold,
        coupon.farming_action,
        coupon.limit_by_identity,
    ) == (25_000, 50, "block", True)
    page = admin_client.get(url)
    assert b"$0.00 of $250.00" in page.content
