"""The referrals overview in a real browser: headless Chromium driven by Playwright logs in
as a marketing user at 1440px, opens the overview from the admin index, checks that the
four charts are drawn with the scenario's numbers, and downloads a table as CSV.

As in billing/tests/test_browser_billing_admin.py: Playwright's sync API runs an event
loop in the test's thread and Django refuses ORM calls from such a thread, so every row
is created before Playwright starts and nothing after it touches the ORM. No skip when
Chromium is missing: it fails and says how to install it.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from referrals.tests.test_admin import scenario

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "browser-test-password"  # a throwaway user of the test database
MARKETING = importlib.import_module("referrals.migrations.0002_beat").MARKETING

CHART_DATA_JS = """() => Object.values(Chart.instances).map(chart => ({
    id: chart.canvas.id,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
}))"""

PAINTED_PIXELS_JS = """canvas => {
    const {width, height} = canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
    return painted;
}"""


def marketing_user() -> User:
    """A staff member of the marketing group, with the migration's referral rights (an
    earlier transactional test's flush may have removed the group: made again here)."""
    group, _ = Group.objects.get_or_create(name="marketing")
    for model, actions in MARKETING.items():
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="referrals",
                codename__in=[f"{action}_{model}" for action in actions],
            )
        )
    user = User.objects.create_user("mia-browser", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def test_marketing_sees_the_referral_charts_and_downloads_csv(
    transactional_db, live_server, tmp_path
):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run scripts/browser.sh (installs Debian's "
        "chromium package) or set CHROMIUM_PATH."
    )
    # given: all rows first (see the module docstring)
    user = marketing_user()
    scenario()
    overview = reverse("admin:referrals_overview")
    login_url = f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(accept_downloads=True, viewport={"width": 1440, "height": 1000})
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
            page.wait_for_selector("canvas[data-chart='rewards'][data-rendered='true']")
            assert "Referrals overview" in page.title()
            assert page.input_value("#id_end") == page.evaluate(
                "new Date().toISOString().slice(0, 10)"
            )

            # then: four Chart.js charts holding the scenario's numbers
            charts = {c["id"]: c for c in page.evaluate(CHART_DATA_JS)}
            assert set(charts) == {
                "chart-funnel",
                "chart-signups",
                "chart-referrers",
                "chart-rewards",
            }

            def data(chart_id: str) -> dict:
                return {d["label"]: d["data"] for d in charts[chart_id]["datasets"]}

            assert charts["chart-funnel"]["labels"] == ["Signed up", "Converted", "Rewarded"]
            assert data("chart-funnel") == {"Referrals": [4, 3, 2]}
            assert len(charts["chart-signups"]["labels"]) == 12
            signups = data("chart-signups")
            assert (signups["Referred"][-1], signups["Organic"][-1]) == (4, 3)
            assert sum(signups["Organic"]) == 4
            assert charts["chart-referrers"]["labels"] == ["ref-a", "ref-b"]
            assert data("chart-referrers") == {"Rewarded": [2, 0], "Converted": [2, 1]}
            rewards = data("chart-rewards")
            assert (rewards["Given USD"][-1], rewards["Clawed back USD"][-1]) == (20, 10)
            for canvas in page.locator("canvas[data-chart]").all():
                assert canvas.evaluate(PAINTED_PIXELS_JS) > 1000  # drawn, not blank
            assert errors == []

            assert page.locator(
                "#referrals-kpis [data-kpi='conversion'] .ref-kpi-value"
            ).inner_text() == ("75.0%")
            usd = page.locator("#referrals-rewards tr[data-currency='USD'] [data-col='net']")
            assert usd.inner_text() == "$10.00"

            screenshot = Path(os.environ.get("REFERRALS_SCREENSHOT", tmp_path / "referrals.png"))
            page.screenshot(path=str(screenshot), full_page=True)

            # and: the CSV link downloads the top referrers
            with page.expect_download() as download_info:
                page.click("a.csv-link[data-kind='referrers']")
            download = download_info.value
            assert download.suggested_filename.startswith("referrals-referrers-")
            rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
            assert rows[0] == [
                "referrer_id",
                "code",
                "signed_up",
                "converted",
                "rewarded",
                "rejected",
            ]
            assert [r[0] for r in rows[1:]] == ["ref-a", "ref-b"]
            assert rows[1][2:] == ["3", "2", "2", "0"]
        finally:
            browser.close()
