"""Admin polish (issue 12), the server side: the coupon list's compact columns, the coupon
form's static files (the type toggle) with its storage unchanged, no "View site" link,
the favicon, and the analytics page's default range fitted to the data.
The browser side is in test_browser_admin.py."""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from coupons import demo_history
from coupons.admin import window_text
from coupons.analytics import rollup
from coupons.analytics.admin_views import DEFAULT_DAYS, MIN_DAYS
from coupons.analytics.tests.test_admin_analytics import make_activity
from coupons.models import Coupon
from coupons.tests.factories import CouponFactory
from coupons.tests.test_admin import coupon_form

pytestmark = pytest.mark.django_db

COUPONS = reverse("admin:coupons_coupon_changelist")
ADD_COUPON = reverse("admin:coupons_coupon_add")
ANALYTICS = reverse("admin:analytics_dashboard")
EN_DASH = "\u2013"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- coupon list --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        (utc(2026, 12, 1), utc(2026, 12, 31, 23, 59), f"Dec 1 {EN_DASH} Dec 31, 2026"),
        (utc(2025, 12, 1), utc(2026, 3, 1), f"Dec 1, 2025 {EN_DASH} Mar 1, 2026"),
        (utc(2026, 12, 1), None, "From Dec 1, 2026"),
        (None, utc(2026, 3, 1), "Until Mar 1, 2026"),
        (None, None, "Always"),
    ],
)
def test_window_is_dates_in_words(start, end, text):
    html = str(window_text(start, end))
    assert html.replace('<span class="nowrap">', "").replace("</span>", "") == text
    # each date is one unbreakable piece: the cell wraps at most once, between them
    assert html.count('class="nowrap"') == (start is not None) + (end is not None)


def test_coupon_list_has_the_compact_columns(marketing_client):
    CouponFactory(
        code="XMAS",
        valid_from=utc(2026, 12, 1),
        valid_to=utc(2026, 12, 31, 23),
        max_uses_total=500,
        stackable=True,
        stack_group="seasonal",
    )
    CouponFactory(code="TENOFF", type="fixed", percent_bp=None, amount_minor=1000)

    page = marketing_client.get(COUPONS)

    assert page.status_code == 200
    assert list(page.context["cl"].list_display[1:]) == [
        "code",
        "value",
        "currency",
        "active",
        "auto_apply",
        "stacking",
        "window",
        "usage",
    ]
    html = page.content.decode()
    assert 'Dec 1</span> \u2013 <span class="nowrap">Dec 31, 2026' in html
    assert 'title="2026-12-01 00:00 → 2026-12-31 23:00"' in html  # the exact times on hover
    assert "0/500" in html
    assert '<span class="stack-group">seasonal</span>' in html
    assert '<span title="Fixed amount">$10.00</span>' in html  # the value says the type
    assert "/static/coupons/admin/coupon.css" in html


def test_value_column_sorts_by_type(marketing_client):
    CouponFactory(code="A-PCT")
    CouponFactory(code="B-FIX", type="fixed", percent_bp=None, amount_minor=500)
    column = marketing_client.get(COUPONS).context["cl"].list_display.index("value")
    page = marketing_client.get(COUPONS, {"o": str(column)})
    assert [c.code for c in page.context["cl"].result_list] == ["B-FIX", "A-PCT"]


# --- coupon form --------------------------------------------------------------------------


def test_coupon_form_loads_the_type_toggle(marketing_client):
    html = marketing_client.get(ADD_COUPON).content.decode()
    assert '<script src="/static/coupons/admin/coupon_form.js"></script>' in html
    assert finders.find("coupons/admin/coupon_form.js")
    assert finders.find("coupons/admin/coupon.css")
    # without JavaScript every value row is on the page, none hidden
    for name in (
        "percent",
        "cap",
        "amount",
        "tiers_text",
        "bogo_buy",
        "bogo_get",
        "bogo_percent_off",
    ):
        assert f'class="form-row field-{name}"' in html, name


def test_values_typed_for_another_type_are_still_stored_empty(marketing_client):
    """What the toggle hides is what the form discards: the type's own fields only."""
    response = marketing_client.post(
        ADD_COUPON,
        coupon_form(
            code="FIXED10",
            type="fixed",
            amount="10.00",
            percent="25",
            cap="50",
            tiers_text="100:10",
            bogo_buy="1",
            bogo_get="1",
            bogo_percent_off="50",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    coupon = Coupon.objects.get(code="FIXED10")
    assert coupon.amount_minor == 1000
    assert (
        coupon.percent_bp,
        coupon.cap_minor,
        coupon.tiers,
        coupon.bogo_buy,
        coupon.bogo_get,
        coupon.bogo_percent_bp,
    ) == (None, None, [], None, None, None)


# --- header, favicon ----------------------------------------------------------------------


def test_admin_header_has_no_view_site_link(marketing_client):
    assert admin.site.site_url is None
    html = marketing_client.get(reverse("admin:index")).content.decode()
    assert "View site" not in html
    assert f'href="{reverse("docs")}">API docs</a>' in html


def test_favicon_is_served_and_linked(marketing_client):
    client = Client()
    response = client.get("/favicon.ico")  # no login: browsers ask for it on any page
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "max-age=86400" in response["Cache-Control"]
    assert client.post("/favicon.ico").status_code == 405

    html = marketing_client.get(reverse("admin:index")).content.decode()
    assert '<link rel="icon" href="/static/core/favicon.svg" type="image/svg+xml">' in html
    assert finders.find("core/favicon.svg")
    login = client.get(reverse("admin:login")).content.decode()
    assert "/static/core/favicon.svg" in login


# --- analytics default range --------------------------------------------------------------


@pytest.fixture
def analyst(client):
    # Not admin_client: seed_demo resets the "admin" login's password (logging it out).
    client.force_login(User.objects.create_superuser("analyst", password="pw"))
    return client


def default_range(client, **params) -> tuple:
    response = client.get(ANALYTICS, params)
    assert response.status_code == 200
    data = response.context["form"].cleaned_data
    return data["start"], data["end"]


def test_default_range_with_no_data_is_the_last_30_days(analyst):
    today = timezone.localdate()
    assert default_range(analyst) == (today - timedelta(days=DEFAULT_DAYS - 1), today)


def test_default_range_starts_with_the_demo_history(analyst):
    call_command("seed_demo", stdout=StringIO())
    today = rollup.today()

    start, end = default_range(analyst)

    assert (start, end) == (today - timedelta(days=demo_history.DAYS), today)
    response = analyst.get(ANALYTICS)
    assert response.context["data"]["has_data"]
    first = response.context["data"]["daily_rows"][0]
    assert first["day"] == start.isoformat()
    assert first["validations"] > 0
    assert b"No coupon activity in this period" not in response.content


def test_default_range_shows_at_least_a_week(analyst):
    make_activity(CouponFactory(code="NEW"))  # the last 3 days
    today = rollup.today()
    assert default_range(analyst) == (today - timedelta(days=MIN_DAYS - 1), today)


def test_default_range_looks_back_30_days_at_most(analyst):
    coupon = CouponFactory(code="OLD")
    make_activity(coupon, {40: (5, []), 20: (2, [])})
    today = rollup.today()
    assert default_range(analyst) == (today - timedelta(days=20), today)
    make_activity(CouponFactory(code="OLDER"), {45: (5, [])})
    assert default_range(analyst)[0] == today - timedelta(days=20)


def test_default_range_fits_the_chosen_scope(analyst):
    make_activity(CouponFactory(code="BUSY"), {25: (3, []), 0: (1, [])})
    make_activity(CouponFactory(code="FRESH"), {10: (2, [])})
    make_activity(CouponFactory(code="EUROS", currency="EUR"), {28: (2, [])})
    today = rollup.today()

    assert default_range(analyst)[0] == today - timedelta(days=25)  # all USD coupons
    assert default_range(analyst, coupon="fresh")[0] == today - timedelta(days=10)
    assert default_range(analyst, currency="EUR")[0] == today - timedelta(days=28)


def test_dates_given_are_kept(analyst):
    make_activity(CouponFactory(code="KEPT"))
    today = rollup.today()
    assert default_range(analyst, start=(today - timedelta(days=59)).isoformat()) == (
        today - timedelta(days=59),
        today,
    )
    # only an end: the start still fits the data before it (none here: 30 days)
    assert default_range(analyst, end="2026-06-30") == (date(2026, 6, 1), date(2026, 6, 30))
