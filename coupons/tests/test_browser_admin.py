"""The admin as a new marketing user sees it at 1440x900 (issue 12), in headless Chromium
(Debian's package, scripts/browser.sh) driven by Playwright, on the demo data of
`seed_demo`: the coupon list fits the screen with its usage column, the coupon form shows
only the chosen type's value fields (and all of them without JavaScript), the favicon
loads, nothing on the pages fails to load, and the analytics page's default range starts
with the demo history.

As in analytics/tests/test_browser_analytics.py: every row is made before Playwright
starts (its event loop forbids ORM calls in this thread); no skip when Chromium is
missing. Screenshots go to $ADMIN_SCREENSHOTS (default: the test's tmp_path).
"""

from __future__ import annotations

import os
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db.models import Q
from django.urls import reverse

from coupons import demo_history
from coupons.analytics import rollup

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "browser-test-password"  # a throwaway user of the test database
VIEWPORT = {"width": 1440, "height": 900}
# What the migrations grant the marketing group on coupons and analytics.
MARKETING_PERMISSIONS = {
    "coupons": (
        "add_coupon",
        "change_coupon",
        "view_coupon",
        "add_code",
        "change_code",
        "view_code",
        "view_redemption",
        "add_customer",
        "change_customer",
        "view_customer",
    ),
    "analytics": (
        "view_dailycouponfact",
        "view_dailysitefact",
        "view_couponevent",
        "view_simulationrun",
        "add_simulationrun",
    ),
}
VALUE_FIELDS = {
    "percentage": {"percent", "cap"},
    "fixed": {"amount"},
    "bogo": {"bogo_buy", "bogo_get", "bogo_percent_off"},
    "tiered": {"tiers_text"},
    "free_shipping": set(),
}
ALL_VALUE_FIELDS = set().union(*VALUE_FIELDS.values())

VISIBLE_VALUE_ROWS_JS = """names => names.filter(name => {
    const row = document.querySelector(".form-row.field-" + name);
    return row && row.offsetParent !== null;
})"""

# The page and the list's scrolling box are no wider than the window; every header's
# right edge is inside both.
LIST_FIT_JS = """() => {
    const doc = document.documentElement;
    const box = document.querySelector("#changelist-form .results");
    const edge = Math.min(box.getBoundingClientRect().right, doc.clientWidth);
    return {
        page: [doc.scrollWidth, doc.clientWidth],
        results: [box.scrollWidth, box.clientWidth],
        outside: [...document.querySelectorAll("#result_list thead th")]
            .filter(th => th.getBoundingClientRect().right > edge + 0.5)
            .map(th => th.className),
    };
}"""

FUNNEL_JS = """() => {
    const chart = Object.values(Chart.instances).find(c => c.canvas.id === "chart-funnel");
    return {labels: chart.data.labels,
            data: Object.fromEntries(chart.data.datasets.map(d => [d.label, d.data]))};
}"""

# Lines an inline element takes: the distinct tops of its boxes.
LINES_JS = """el => new Set([...el.getClientRects()].filter(r => r.width > 0)
    .map(r => Math.round(r.top))).size"""


def marketing_user() -> User:
    """A staff member of the marketing group, as a new hire gets it. The group comes from
    data migrations; an earlier transactional test's flush may have removed it, so it is
    made again with the migrations' coupon and analytics permissions."""
    group, _ = Group.objects.get_or_create(name="marketing")
    wanted = Q()
    for app_label, codenames in MARKETING_PERMISSIONS.items():
        wanted |= Q(content_type__app_label=app_label, codename__in=codenames)
    group.permissions.add(*Permission.objects.filter(wanted))
    user = User.objects.create_user("nora-browser", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def test_marketing_user_at_1440px(transactional_db, live_server, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run scripts/browser.sh (installs Debian's "
        "chromium package) or set CHROMIUM_PATH."
    )
    # given: the demo (its coupons, a campaign's coupon, two weeks of history), all rows
    # first (see the module docstring)
    user = marketing_user()  # first: seed_demo adds its demo marketer to the group
    call_command("seed_demo", stdout=StringIO())
    today = rollup.today()
    first_demo_day = today - timedelta(days=demo_history.DAYS)
    shots = Path(os.environ.get("ADMIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    url = live_server.url
    coupons_url = reverse("admin:coupons_coupon_changelist")
    add_url = reverse("admin:coupons_coupon_add")
    analytics_url = reverse("admin:analytics_dashboard")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console: {m.text} {m.location}")
                    if m.type == "error"
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )

            # when: she logs in through the admin's form
            page.goto(f"{url}{reverse('admin:login')}?next={reverse('admin:index')}")
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{url}{reverse('admin:index')}")
            # then: no "View site" (nothing to view), the API docs link instead
            user_tools = page.locator("#user-tools")
            assert user_tools.get_by_text("View site").count() == 0
            assert user_tools.get_by_role("link", name="API docs").is_visible()

            # and: the favicon, at the address browsers try and the one the admin links
            icon = page.request.get(f"{url}/favicon.ico")
            assert icon.status == 200
            assert icon.headers["content-type"] == "image/x-icon"
            linked = page.locator("link[rel=icon]").get_attribute("href")
            svg = page.request.get(url + linked)
            assert svg.status == 200
            assert svg.headers["content-type"].startswith("image/svg+xml")

            # when: she opens the coupon list
            page.click(f"#content-main a[href='{coupons_url}']")  # the index's app list
            page.wait_for_url(url + coupons_url)
            # then: it fits the window, usage included, with no horizontal scroll
            fit = page.evaluate(LIST_FIT_JS)
            assert fit["page"][0] <= fit["page"][1], fit
            assert fit["results"][0] <= fit["results"][1], fit
            assert fit["outside"] == [], fit
            row = page.locator(
                "#result_list tbody tr", has=page.locator("th.field-code a", has_text="SUMMER25")
            )
            usage = row.locator("td.field-usage")
            assert usage.inner_text() == "0/10000"
            assert usage.is_visible()
            box = usage.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= VIEWPORT["width"]
            assert page.locator("#result_list thead th.column-usage").is_visible()
            # and: a window is its dates, each on one line, the cell two lines at most
            window = row.locator("td.field-window .coupon-window")
            assert " \u2013 " in window.inner_text()
            assert window.evaluate(LINES_JS) <= 2
            for date in window.locator(".nowrap").all():
                assert date.evaluate(LINES_JS) == 1
            page.screenshot(path=str(shots / "coupon-list.png"))

            # when: she adds a coupon
            page.click(f"a[href='{add_url}']")
            page.wait_for_url(url + add_url)
            names = sorted(ALL_VALUE_FIELDS)
            # then: no type yet, no value field; a note says why
            assert page.evaluate(VISIBLE_VALUE_ROWS_JS, names) == []
            assert page.locator("#coupon-type-note").inner_text().startswith("Choose a type")
            # and: each type shows its own value fields only
            for kind in ("percentage", "fixed", "bogo", "tiered", "free_shipping", "percentage"):
                page.select_option("#id_type", kind)
                assert set(page.evaluate(VISIBLE_VALUE_ROWS_JS, names)) == VALUE_FIELDS[kind], kind
                assert page.locator("#coupon-type-note").is_visible() == (
                    kind == "free_shipping"
                ), kind
            page.screenshot(path=str(shots / "coupon-add-percentage.png"), full_page=True)
            # and: what was typed for another type is kept on screen but not saved
            page.fill("#id_code", "browser-fixed")
            page.fill("#id_percent", "25")
            page.select_option("#id_type", "fixed")
            page.fill("#id_amount", "10.00")
            page.click("input[name=_save]")
            page.wait_for_url(url + coupons_url)
            saved = page.locator(
                "#result_list tbody tr",
                has=page.locator("th.field-code a", has_text="BROWSER-FIXED"),
            )
            assert saved.locator("td.field-value").inner_text() == "$10.00"

            # when: she opens the analytics page from the index
            page.goto(f"{url}{reverse('admin:index')}")
            page.click(f"a[href='{analytics_url}']")
            page.wait_for_url(url + analytics_url)
            page.wait_for_selector("canvas[data-chart='funnel'][data-rendered='true']")
            # then: the default range starts with the demo history, up to today
            assert page.input_value("#id_start") == first_demo_day.isoformat()
            assert page.input_value("#id_end") == today.isoformat()
            funnel = page.evaluate(FUNNEL_JS)
            assert funnel["labels"][0] == first_demo_day.isoformat()
            assert funnel["labels"][-1] == today.isoformat()
            validations = funnel["data"]["Validation attempts"]
            assert validations[0] > 0  # the first day shown has data, and so does each
            assert all(validations), validations
            assert page.get_by_text("No coupon activity in this period").count() == 0
            page.screenshot(path=str(shots / "analytics.png"), full_page=True)

            assert problems == []

            # and: without JavaScript the form still shows every value field
            plain = browser.new_context(
                viewport=VIEWPORT, java_script_enabled=False, storage_state=context.storage_state()
            )
            form = plain.new_page()
            form.goto(url + add_url)
            for name in names:
                assert form.locator(f".form-row.field-{name}").is_visible(), name
            plain.close()
        finally:
            browser.close()
