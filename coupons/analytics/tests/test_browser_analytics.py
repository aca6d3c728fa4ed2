"""The analytics page in a real browser: headless Chromium (Debian's package, installed by
scripts/browser.sh) driven by Playwright logs in as a marketing user and checks that the
charts are drawn with the data, the top-coupons table lists the coupon and the CSV
link downloads the numbers.

Playwright's sync API runs an event loop in the test's thread, and Django refuses ORM
calls from a thread with a running loop (SynchronousOnlyOperation). So every row is
created before Playwright starts, and nothing after it touches the ORM: no
DJANGO_ALLOW_ASYNC_UNSAFE needed. The live server answers from its own thread.

No skip when Chromium is missing: CI must run this test, so it fails and says how to
install the browser.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from coupons.analytics.tests.test_admin_analytics import make_activity
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "browser-test-password"  # a throwaway user of the test database
# What the marketing migration grants on analytics (analytics/migrations/0002).
MARKETING_PERMISSIONS = (
    "view_dailycouponfact",
    "view_dailysitefact",
    "view_couponevent",
    "view_simulationrun",
    "add_simulationrun",
)

CHART_DATA_JS = """() => Object.values(Chart.instances).map(chart => ({
    id: chart.canvas.id,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
}))"""

# Pixels of a canvas that something was drawn on (a blank canvas is all transparent).
PAINTED_PIXELS_JS = """canvas => {
    const {width, height} = canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
    return painted;
}"""


def marketing_user() -> User:
    """A staff member of the marketing group. The group comes from a data migration; an
    earlier transactional test's flush may have removed it, so it is made again here with
    the migration's analytics permissions (test_admin_analytics checks the migration)."""
    group, _ = Group.objects.get_or_create(name="marketing")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="analytics", codename__in=MARKETING_PERMISSIONS
        )
    )
    user = User.objects.create_user("mia-browser", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def test_marketing_user_sees_charts_with_data(transactional_db, live_server, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run scripts/browser.sh (installs Debian's "
        "chromium package) or set CHROMIUM_PATH."
    )
    # given: all rows first (see the module docstring)
    user = marketing_user()
    coupon = CouponFactory(code="BROWSER10", description="Browser test coupon")
    days = make_activity(coupon)  # 3 days: 4/2/3 validations, 2/1/1 redemptions
    page_url = live_server.url + reverse("admin:analytics_dashboard")
    login_url = f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1400, "height": 1000}
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # when: log in through the admin's form, find the page from the index
            page.goto(login_url)
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")
            page.click(f"a[href='{reverse('admin:analytics_dashboard')}']")
            page.wait_for_url(page_url)
            page.wait_for_selector("canvas[data-chart='funnel'][data-rendered='true']")

            # then: two Chart.js charts holding the days' numbers
            assert "Coupon analytics" in page.title()
            charts = {c["id"]: c for c in page.evaluate(CHART_DATA_JS)}
            assert set(charts) == {"chart-redemptions", "chart-funnel"}
            day_labels = [d.isoformat() for d in days]
            usage = charts["chart-redemptions"]
            # The seeded days, wherever the range puts them (it ends "today": a run that
            # crosses midnight gets one more, empty, day after them).
            assert day_labels[0] in usage["labels"], usage["labels"]
            first = usage["labels"].index(day_labels[0])
            seen = slice(first, first + 3)
            assert usage["labels"][seen] == day_labels
            # the default range: 3 active days, shown as at least a week (default_start)
            assert len(usage["labels"]) == 7
            datasets = {d["label"]: d["data"] for d in usage["datasets"]}
            assert datasets["Redemptions"][seen] == [2, 1, 1]
            assert sum(datasets["Redemptions"]) == 4
            assert datasets["Discount"][seen] == [30, 5, 15]
            funnel = {d["label"]: d["data"] for d in charts["chart-funnel"]["datasets"]}
            assert funnel["Validation attempts"][seen] == [4, 2, 3]
            assert funnel["Redemptions"][seen] == [2, 1, 1]
            for canvas in page.locator("canvas[data-chart]").all():
                assert canvas.evaluate(PAINTED_PIXELS_JS) > 1000  # drawn, not blank
            assert errors == []

            kpis = page.locator("#analytics-kpis")
            assert kpis.locator("[data-kpi='redemptions'] .analytics-kpi-value").inner_text() == "4"
            row = page.locator("#top-coupons tr[data-code='BROWSER10']")
            assert row.is_visible()
            assert "Browser test coupon" in row.inner_text()

            screenshot = Path(os.environ.get("ANALYTICS_SCREENSHOT", tmp_path / "analytics.png"))
            page.screenshot(path=str(screenshot), full_page=True)

            # and: the CSV link downloads the daily numbers
            with page.expect_download() as download_info:
                page.click("a.csv-link[data-kind='daily']")
            download = download_info.value
            assert download.suggested_filename.startswith("coupon-analytics-daily-USD-")
            rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
            assert rows[0][:3] == ["day", "validations", "redemptions"]
            first_row = [r[0] for r in rows].index(days[0].isoformat())
            assert rows[first_row : first_row + 3] == [
                [days[0].isoformat(), "4", "2", "2", "30.00", "300.00", "270.00", "2"],
                [days[1].isoformat(), "2", "1", "1", "5.00", "50.00", "45.00", "0"],
                [days[2].isoformat(), "3", "1", "1", "15.00", "150.00", "135.00", "1"],
            ]

            # and: a coupon's row leads to that coupon's page with its own charts
            row.locator("a").click()
            page.wait_for_selector("canvas[data-chart='redemptions'][data-rendered='true']")
            assert "Coupon BROWSER10" in page.content()
            assert page.evaluate("() => Object.values(Chart.instances).length") == 2
        finally:
            browser.close()
