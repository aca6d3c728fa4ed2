"""The billing overview in a real browser: headless Chromium (Debian's package, installed
by scripts/browser.sh) driven by Playwright logs in as a finance user, opens the overview
from the admin index, picks the months of the test clock's history and checks that the
four charts are drawn with its numbers; then follows the past-due box to dunning.

As in coupons/analytics/tests/test_browser_analytics.py: Playwright's sync API runs an
event loop in the test's thread and Django refuses ORM calls from such a thread, so every
row is created before Playwright starts and nothing after it touches the ORM. No skip
when Chromium is missing: CI must run this test, so it fails and says how to install it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from billing.tests import history

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "browser-test-password"  # a throwaway user of the test database
FINANCE = importlib.import_module("billing.migrations.0002_finance_group_and_schedules").FINANCE

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


def finance_user() -> User:
    """A staff member of the finance group. The group comes from a data migration; an
    earlier transactional test's flush may have removed it, so it is made again here with
    the migration's permissions (test_admin checks the migration's group)."""
    group, _ = Group.objects.get_or_create(name="finance")
    for model, actions in FINANCE.items():
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="billing",
                codename__in=[f"{action}_{model}" for action in actions],
            )
        )
    user = User.objects.create_user("fiona-browser", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def test_finance_user_sees_the_overview_charts_with_data(transactional_db, live_server, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run scripts/browser.sh (installs Debian's "
        "chromium package) or set CHROMIUM_PATH."
    )
    # given: all rows first (see the module docstring)
    user = finance_user()
    history.build()  # Jan 10 - Mar 12, 2026 on a test clock
    overview = reverse("admin:billing_overview")
    login_url = f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # when: log in through the admin's form, find the page from the index
            page.goto(login_url)
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")
            page.click(f"#content-main a[href='{overview}']")
            page.wait_for_url(f"{live_server.url}{overview}")
            page.wait_for_selector("canvas[data-chart='trials'][data-rendered='true']")
            assert "Billing overview" in page.title()
            # and: choose the clock's months
            page.fill("#id_end", "2026-04")
            page.fill("#id_months", "4")
            page.click("#billing-filters-submit")
            page.wait_for_url("**/overview/?end=2026-04&months=4")
            page.wait_for_selector("canvas[data-chart='trials'][data-rendered='true']")

            # then: four Chart.js charts holding the months' numbers
            charts = {c["id"]: c for c in page.evaluate(CHART_DATA_JS)}
            assert set(charts) == {"chart-mrr", "chart-flow", "chart-dunning", "chart-trials"}
            months = ["2026-01", "2026-02", "2026-03", "2026-04"]
            for chart in charts.values():
                assert chart["labels"] == months

            def data(chart_id: str) -> dict:
                return {d["label"]: d["data"] for d in charts[chart_id]["datasets"]}

            assert data("chart-mrr") == {
                "MRR EUR": [40, 40, 20, 0],
                "MRR USD": [94, 79, 69, 0],
            }
            assert data("chart-flow") == {"New": [11, 0, 0, 0], "Churned": [1, 2, 0, 0]}
            assert data("chart-dunning") == {
                "Recovered": [0, 1, 0, 0],
                "Lost": [0, 1, 0, 0],
                "Still past due": [0, 0, 2, 0],
                "Recovery rate": [None, 50, 0, None],
            }
            assert data("chart-trials") == {
                "Converted": [1, 0, 0, 0],
                "Not converted": [1, 0, 0, 0],
                "Conversion rate": [50, None, None, None],
            }
            for canvas in page.locator("canvas[data-chart]").all():
                assert canvas.evaluate(PAINTED_PIXELS_JS) > 1000  # drawn, not blank
            assert errors == []

            kpi = page.locator("#billing-kpis [data-kpi='dunning_recovery'] .billing-kpi-value")
            assert kpi.inner_text() == "25.0%"
            january = page.locator("#billing-months tr[data-month='2026-01']")
            assert "$94.00" in january.inner_text()
            assert page.locator("#billing-definitions").is_visible()

            screenshot = Path(os.environ.get("BILLING_SCREENSHOT", tmp_path / "billing.png"))
            page.screenshot(path=str(screenshot), full_page=True)

            # and: the past-due box leads to dunning, with the two customers
            page.click("#billing-kpis [data-kpi='past_due'] a")
            page.wait_for_url(f"**{reverse('admin:billing_dunning')}")
            rows = page.locator("#dunning-list tr[data-customer]")
            assert rows.count() == 2
            assert page.locator("tr[data-customer='fin-j'] [data-col='amount']").inner_text() == (
                "€20.00"
            )
        finally:
            browser.close()
