"""The referrals overview in the admin (issue 15): who may see it, the page from the index
and the referral list, its numbers (funnel, signups per week, top referrers, rewards),
its CSV downloads, a bad range as a form error; and the program's one-row screen.

Data: `scenario()`, made through referrals.services and billing's test support (the
browser test uses it too). The user is a staff member of the migration's "marketing"
group (conftest's `marketing_client`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingCustomer
from billing.tests import support as billing
from referrals import reporting, services
from referrals.models import Program

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("admin:referrals_overview")
CSV_URL = reverse("admin:referrals_overview_csv")
REFERRALS = reverse("admin:referrals_referral_changelist")


def scenario() -> None:
    """Two referrers. ref-a's invitees: a1 rewarded then refunded (clawed back), a2
    rewarded, a3 only signed up; ref-b's b1 converted then refunded inside the hold
    (rejected). Two organic customers, org-2 created three weeks ago. No hold, so the
    rewards are due at once. Signups: 8 (7 this week); referred: 4."""
    services.program()
    Program.objects.filter(pk=1).update(hold_days=0)
    for referrer in ("ref-a", "ref-b"):
        billing.customer(referrer, card="pm_card_visa")
        services.code_get_or_create(customer_id=referrer)
    for invitee, referrer in (("a1", "ref-a"), ("a2", "ref-a"), ("a3", "ref-a"), ("b1", "ref-b")):
        billing.customer(invitee, card="pm_card_mastercard")
        code = services.code_get_or_create(customer_id=referrer)[0].code
        services.attribute(code=code, customer_id=invitee)
    for organic in ("org-1", "org-2"):
        billing.customer(organic)
    three_weeks_ago = timezone.now() - timedelta(weeks=3)
    BillingCustomer.objects.filter(customer_id="org-2").update(
        created_at=three_weeks_ago, signed_up_at=three_weeks_ago
    )

    def paid(invitee: str) -> None:
        assert services.invoice_paid(
            customer_id=invitee, invoice_id=f"inv-{invitee}", amount_minor=2900, currency="USD"
        )

    paid("a1")
    paid("a2")
    assert services.rewards_due(now=timezone.now()) == 2
    paid("b1")
    assert services.invoice_refunded(customer_id="b1", invoice_id="inv-b1") == "rejected"
    assert services.invoice_refunded(customer_id="a1", invoice_id="inv-a1") == "clawed_back"


@pytest.fixture
def referral_history():
    scenario()


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def series(response) -> dict:
    html = response.content.decode()
    found = re.search(r'<script id="referrals-series" type="application/json">(.*?)</script>', html)
    assert found, "no chart data on the page"
    return json.loads(found[1])


def download(client, kind: str, query: str = "") -> list[list[str]]:
    response = client.get(f"{CSV_URL}?kind={kind}{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="referrals-{kind}-' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- access ---------------------------------------------------------------------------------


def test_marketing_has_the_view_right_from_the_migration():
    perms = Group.objects.get(name="marketing").permissions.values_list("codename", flat=True)
    assert "view_referral" in set(perms)


def test_marketing_finds_the_page_and_others_are_refused(marketing_client, django_user_model):
    for url in (reverse("admin:index"), reverse("admin:app_list", args=["referrals"])):
        assert f'href="{OVERVIEW}"' in marketing_client.get(url).content.decode(), url
    assert f'href="{OVERVIEW}"' in marketing_client.get(REFERRALS).content.decode()
    assert marketing_client.get(OVERVIEW).status_code == 200
    # a staff user without referrals.view_referral
    marketing_client.force_login(django_user_model.objects.create_user("otto", is_staff=True))
    assert marketing_client.get(OVERVIEW).status_code == 403
    assert marketing_client.get(f"{CSV_URL}?kind=funnel").status_code == 403
    assert OVERVIEW not in marketing_client.get(reverse("admin:index")).content.decode()
    # not staff at all: the admin's login
    marketing_client.logout()
    assert marketing_client.get(OVERVIEW).status_code == 302


# --- the numbers ----------------------------------------------------------------------------


def test_the_page_shows_the_scenario(marketing_client, referral_history):
    response = marketing_client.get(OVERVIEW)
    assert response.status_code == 200
    data = response.context["data"]
    page = text(response.content.decode())

    kpis = {k["key"]: k["value"] for k in data["kpis"]}
    assert kpis == {
        "signed_up": "4",
        "conversion": "75.0%",
        "rewarded": "2",
        "referred_share": "50.0%",
        "rewards_net": "$10.00",
    }
    assert [(r["step"], r["count"], r["rate_text"]) for r in data["funnel"]] == [
        ("signed_up", 4, "—"),
        ("converted", 3, "75.0%"),
        ("rewarded", 2, "66.7%"),
    ]
    assert "1 rejected, 0 held for review" in page

    # twelve weeks up to this one; org-2 three weeks back
    weeks = data["weeks"]
    assert len(weeks) == 12
    assert [(w["row"].signups, w["row"].referred, w["row"].organic) for w in weeks[-4:]] == [
        (1, 0, 1),
        (0, 0, 0),
        (0, 0, 0),
        (7, 4, 3),
    ]
    assert sum(w["row"].signups for w in weeks) == 8

    assert [
        (r.referrer_id, r.signed_up, r.converted, r.rewarded, r.rejected) for r in data["referrers"]
    ] == [("ref-a", 3, 2, 2, 0), ("ref-b", 1, 1, 0, 1)]

    [usd] = data["rewards"]
    assert (usd["row"].given, usd["given_text"]) == (2, "$20.00")
    assert (usd["row"].clawed_back, usd["clawed_back_text"]) == (1, "$10.00")
    assert usd["net_text"] == "$10.00"

    # the charts' data agrees with the tables
    chart = series(response)
    assert chart["funnel"]["data"] == [4, 3, 2]
    assert chart["referred"][-1] == 4
    assert chart["organic"][-4:] == [1, 0, 0, 3]
    assert chart["referrers"] == {
        "labels": ["ref-a", "ref-b"],
        "rewarded": [2, 0],
        "converted": [2, 1],
    }
    assert chart["rewards"] == [
        {"currency": "USD", "given": [0] * 11 + [20.0], "clawed_back": [0] * 11 + [10.0]}
    ]
    # the inputs show the default range, and the CSV links carry it
    start = weeks[0]["week"]
    form = response.context["form"]
    assert (form["start"].value(), form["end"].value()) == (start, str(timezone.now().date()))
    assert f"{CSV_URL}?start={start}&amp;end={timezone.now().date()}&amp;kind=weekly" in (
        response.content.decode()
    )


def test_a_range_without_the_activity_is_empty(marketing_client, referral_history):
    response = marketing_client.get(f"{OVERVIEW}?start=2020-01-01&end=2020-01-31")
    data = response.context["data"]
    assert data["has_data"] is False
    assert [r["count"] for r in data["funnel"]] == [0, 0, 0]
    assert data["rewards"] == []
    assert [w["week"] for w in data["weeks"]][:2] == ["2019-12-30", "2020-01-06"]
    assert "No signups, referrals or rewards in this range." in response.content.decode()


def test_bad_ranges_are_form_errors(marketing_client):
    for query in (
        "start=2026-03-10&end=2026-03-01",
        "start=nope",
        "start=2024-01-01&end=2026-01-01",
    ):
        response = marketing_client.get(f"{OVERVIEW}?{query}")
        assert response.status_code == 200, query
        assert response.context["data"] is None
        assert "errornote" in response.content.decode()
        assert marketing_client.get(f"{CSV_URL}?kind=funnel&{query}").status_code == 400
    assert marketing_client.get(f"{CSV_URL}?kind=everything").status_code == 400


def test_the_csv_downloads_hold_the_tables(marketing_client, referral_history):
    assert download(marketing_client, "funnel") == [
        ["step", "referrals", "rate"],
        ["signed_up", "4", ""],
        ["converted", "3", "0.7500"],
        ["rewarded", "2", "0.6667"],
    ]
    assert download(marketing_client, "referrers") == [
        ["referrer_id", "code", "signed_up", "converted", "rewarded", "rejected"],
        ["ref-a", services.code_get_or_create(customer_id="ref-a")[0].code, "3", "2", "2", "0"],
        ["ref-b", services.code_get_or_create(customer_id="ref-b")[0].code, "1", "1", "0", "1"],
    ]
    assert download(marketing_client, "rewards") == [
        ["currency", "given", "given_amount", "clawed_back", "clawed_back_amount", "net"],
        ["USD", "2", "20.00", "1", "10.00", "10.00"],
    ]
    weekly = download(marketing_client, "weekly")
    assert weekly[0] == ["week", "signups", "referred", "organic", "referred_share"]
    this_week = reporting.monday(timezone.now().date()).isoformat()
    assert len(weekly) == 13
    assert weekly[-1] == [this_week, "7", "4", "3", "0.5714"]
    # a chosen range
    today = timezone.now().date()
    only_today = download(marketing_client, "weekly", f"&start={today}&end={today}")
    assert only_today[1:] == [[this_week, "7", "4", "3", "0.5714"]]


def test_reporting_reads_the_range_only(referral_history):
    today = timezone.now().date()
    before = today - timedelta(days=1)
    assert reporting.funnel(before, before) == reporting.Funnel(0, 0, 0, 0, 0)
    assert reporting.funnel(today, today) == reporting.Funnel(4, 3, 2, 1, 0)
    assert reporting.rewards(before, before) == []


# --- the program ----------------------------------------------------------------------------


def test_the_program_list_goes_to_its_one_row(marketing_client):
    assert not Program.objects.exists()
    response = marketing_client.get(reverse("admin:referrals_program_changelist"))
    change = reverse("admin:referrals_program_change", args=[1])
    assert (response.status_code, response["Location"]) == (302, change)
    assert Program.objects.count() == 1
    page = marketing_client.get(change)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Review rules" in html
    assert "20% off 3 invoice(s)" in html
    assert "Save and add another" not in html
    # saving comes back to the program (through the list)
    form = {
        "referrer_credit_minor": 1500,
        "hold_days": 7,
        "welcome_percent_bp": 2000,
        "welcome_invoices": 3,
        "review_max_per_ip_day": 3,
        "review_max_per_device_day": 3,
        "review_max_per_referrer_hour": 5,
        "active": "on",
        "_save": "Save",
    }
    saved = marketing_client.post(change, form, follow=True)
    assert saved.redirect_chain[-1][0] == change
    assert Program.objects.get().hold_days == 7
