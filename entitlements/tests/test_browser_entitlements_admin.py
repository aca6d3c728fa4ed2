"""The entitlements admin in a real browser: headless Chromium (Debian's package, installed
by scripts/browser.sh) driven by Playwright logs in as a member of the "entitlements"
group, opens the plan x feature matrix from the admin index at 1440 px, changes a limit
and ticks "unlimited" on another, saves and sees the new values; then opens a customer's
page, grants them Pro's features for 14 days and sees the source become "grant".

As in billing/tests/test_browser_billing_admin.py: Playwright's sync API runs an event
loop in the test's thread and Django refuses ORM calls from such a thread, so every row
is created before Playwright starts and the database is checked after it has stopped.
No skip when Chromium is missing: CI must run this test, so it fails and says how to
install it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from billing.models import OutboxEvent, Plan
from entitlements import services
from entitlements.models import Grant
from entitlements.tests import support as t

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "browser-test-password"  # a throwaway user of the test database
GROUP = importlib.import_module("entitlements.migrations.0002_beat_and_entitlements_group")
GRANTS = importlib.import_module("entitlements.migrations.0003_entitlements_group_grants")

# The page is no wider than the window: nothing scrolls sideways.
NO_SIDEWAYS_SCROLL_JS = (
    "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)


def entitlements_user() -> User:
    """A staff member of the entitlements group. The group comes from data migrations; an
    earlier transactional test's flush may have removed it, so it is made again here with
    the migrations' permissions (test_admin checks the migrations' group)."""
    group, _ = Group.objects.get_or_create(name="entitlements")
    codenames = [f"{a}_{model}" for model, actions in GROUP.PERMISSIONS.items() for a in actions]
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="entitlements",
            codename__in=[*codenames, *GRANTS.PERMISSIONS],
        )
    )
    user = User.objects.create_user("enzo-browser", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def test_the_matrix_and_a_grant_from_the_customer_page(transactional_db, live_server, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is not installed at {CHROMIUM}: run scripts/browser.sh (installs Debian's "
        "chromium package) or set CHROMIUM_PATH."
    )
    # given: all rows first (see the module docstring)
    user = entitlements_user()
    t.setup_catalog()  # free (3 projects), pro (10, sso), team (unlimited, sso)
    services.reserve(customer_id="cust-browser", feature_key="projects", resource_id="proj-1")
    matrix = reverse("admin:entitlements_matrix")
    customer = reverse("admin:entitlements_customer")
    login_url = f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # when: log in through the admin's form, find the matrix from the index
            page.goto(login_url)
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")
            page.click(f"#content-main a[href='{matrix}']")
            page.wait_for_url(f"{live_server.url}{matrix}")
            assert "feature matrix" in page.title()
            assert page.evaluate(NO_SIDEWAYS_SCROLL_JS)
            pro_projects = page.locator("input[name='pro.projects']")
            assert pro_projects.input_value() == "10"
            # team's projects are unlimited: its number is not in use
            assert page.locator("input[name='team.projects']").is_disabled()

            # and: pro gets 25 projects, free unlimited projects (the number goes away)
            pro_projects.fill("25")
            page.check("input[name='free.projects.unlimited']")
            assert page.locator("input[name='free.projects']").is_disabled()
            page.screenshot(path=str(tmp_path / "matrix.png"), full_page=True)
            page.click("#matrix-save")
            page.wait_for_selector(".messagelist .success")

            # then: the page shows the saved values
            message = page.locator(".messagelist .success").inner_text()
            assert "Saved 2 plan(s)" in message
            assert page.locator("input[name='pro.projects']").input_value() == "25"
            cell = page.locator("td[data-plan='pro'][data-feature='projects']")
            assert cell.get_attribute("data-value") == "25"
            assert (
                page.locator("td[data-plan='free'][data-feature='projects']").get_attribute(
                    "data-value"
                )
                == "unlimited"
            )

            # when: a customer's page, then "grant the features of Pro for 14 days"
            page.click(f".object-tools a[href='{customer}']")
            page.wait_for_url(f"{live_server.url}{customer}")
            page.fill("#id_id", "cust-browser")
            page.click("#customer-search-submit")
            page.wait_for_selector("#ent-features tr[data-feature='sso']")
            sso_source = page.locator("#ent-features tr[data-feature='sso'] [data-col='source']")
            assert sso_source.inner_text() == "default"
            used = page.locator("#ent-usage tr[data-feature='projects'] [data-col='used']")
            assert used.inner_text() == "1"
            page.select_option("#id_plan", "pro")
            assert page.input_value("#id_days") == "14"
            page.fill("#id_reason", "browser test")
            page.click("#grant-submit")
            page.wait_for_selector(".messagelist .success")

            # then: sso now comes from the grant; projects stay the default plan's, now
            # unlimited, which beats Pro's 25 (the most generous source wins)
            assert "Granted cust-browser the features of Pro" in page.inner_text(".messagelist")
            assert sso_source.inner_text() == "grant"
            projects = page.locator("#ent-features tr[data-feature='projects']")
            assert projects.locator("[data-col='source']").inner_text() == "default"
            assert projects.locator("[data-col='limit']").inner_text() == "unlimited"
            assert page.locator("#ent-grants tr[data-state='live']").count() == 2
            assert page.locator("#ent-events tr[data-kind='granted']").count() == 2
            page.screenshot(
                path=os.environ.get("ENTITLEMENTS_SCREENSHOT", str(tmp_path / "customer.png")),
                full_page=True,
            )
            assert errors == []
        finally:
            browser.close()

    # and the database agrees (Playwright has stopped: the ORM may be used again)
    assert Plan.objects.get(code="pro").features == {"projects": 25, "sso": True}
    assert Plan.objects.get(code="free").features == {"projects": None, "sso": False}
    assert OutboxEvent.objects.filter(type="plan.updated").count() == 2
    grants = Grant.objects.filter(customer_id="cust-browser", created_by=user.username)
    assert dict(grants.values_list("feature__key", "value")) == {"projects": 25, "sso": True}
