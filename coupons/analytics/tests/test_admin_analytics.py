"""The analytics page in the Django admin: who may see it, the numbers it shows from
constructed events and their roll-up, the filters (bad input is a form error, not a
500), the chart data and the CSV downloads."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from coupons.analytics import events, rollup
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:analytics_dashboard")
CSV = reverse("admin:analytics_csv")


# --- data -----------------------------------------------------------------------------------


def at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=timezone.get_default_timezone())


# Per day back from today: (validations, [(customer, order value, discount, new customer)]).
ACTIVITY = {
    2: (4, [("c-1", 10_000, 1_000, True), ("c-2", 20_000, 2_000, True)]),
    1: (2, [("c-3", 5_000, 500, False)]),
    0: (3, [("c-4", 15_000, 1_500, True)]),
}


def make_activity(coupon, activity=ACTIVITY) -> list:
    """Validate and confirm events of `coupon` on the last days, rolled up; returns the days.
    Totals with ACTIVITY: 9 validations, 4 redemptions, $50.00 discount on $500.00 of
    orders, 3 new customers."""
    today = rollup.today()
    rows, days = [], []
    for back, (validations, orders) in activity.items():
        day = today - timedelta(days=back)
        days.append(day)
        common = {"code": coupon.code, "coupon_id": coupon.pk, "currency": coupon.currency}
        rows += [
            {
                "kind": "validate",
                "outcome": "valid",
                "occurred_at": at(day, 9),
                "customer_id": f"v-{back}-{i}",
                **common,
            }
            for i in range(validations)
        ]
        for n, (customer, value, discount, new) in enumerate(orders):
            order = f"o-{coupon.code}-{back}-{n}"
            shared = {
                **common,
                "customer_id": customer,
                "order_id": order,
                "order_value_minor": value,
                "discount_minor": discount,
                "new_customer": new,
            }
            rows += [
                {"kind": "apply", "outcome": "applied", "occurred_at": at(day, 10), **shared},
                {"kind": "confirm", "outcome": "ok", "occurred_at": at(day, 11), **shared},
            ]
    events.write(rows)
    rollup.rollup_days(days)
    return sorted(days)


# --- users ----------------------------------------------------------------------------------


@pytest.fixture
def superuser(client):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def outsider(client):
    client.force_login(User.objects.create_user("otto", password="pw", is_staff=True))
    return client


def kpi(html: str, key: str) -> str:
    """The value shown in one KPI box."""
    box = html.split(f'data-kpi="{key}"', 1)[1]
    return box.split('class="analytics-kpi-value">', 1)[1].split("</p>", 1)[0]


# --- access ---------------------------------------------------------------------------------


def test_superuser_sees_the_numbers(superuser):
    # given
    coupon = CouponFactory(code="SUMMER", description="Summer sale")
    make_activity(coupon)
    # when
    response = superuser.get(PAGE)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "Coupon analytics" in html
    assert "All USD coupons" in html
    assert kpi(html, "validations") == "9"
    assert kpi(html, "redemptions") == "4"
    assert kpi(html, "redemption_rate") == "44.4%"
    assert kpi(html, "discount") == "$50.00"
    assert kpi(html, "order_value") == "$500.00"
    assert kpi(html, "revenue_impact") == "$450.00"
    assert kpi(html, "aov") == "$125.00"
    assert kpi(html, "new_customers") == "3"
    assert kpi(html, "discount_per_new_customer") == "$16.67"
    top = html.split('id="top-coupons"', 1)[1]
    assert 'data-code="SUMMER"' in top
    assert "Summer sale" in top
    assert f"{PAGE}?" in top
    assert "coupon=SUMMER" in top  # per-coupon link


def test_marketing_user_sees_the_page_from_the_admin_index(marketing_client):
    coupon = CouponFactory(code="MKT10")
    make_activity(coupon)
    index = marketing_client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert PAGE.encode() in index.content
    response = marketing_client.get(PAGE)
    assert response.status_code == 200
    assert kpi(response.content.decode(), "redemptions") == "4"


@pytest.mark.parametrize("url", [PAGE, CSV, f"{CSV}?kind=top"])
def test_staff_without_permission_is_refused(outsider, url):
    assert outsider.get(url).status_code == 403


def test_anonymous_goes_to_the_login_page(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_all_coupons_view_counts_a_stacked_order_once(superuser):
    # given: 5 orders, two of them stacked (8 coupon uses), two days ago and today
    from coupons.analytics.tests.factories import stacked_orders

    typed, promo = CouponFactory(code="TYPED10"), CouponFactory(code="PROMO5", auto_apply=True)
    today = rollup.today()
    stacked_orders(
        typed, promo, CouponFactory(code="SOLO"), closed=today - timedelta(days=2), today=today
    )
    # when
    html = superuser.get(PAGE).content.decode()
    # then: what belongs to the order counts once, each coupon's discount is added
    assert kpi(html, "order_value") == "$430.00"  # not $930.00
    assert kpi(html, "revenue_impact") == "$367.00"
    assert kpi(html, "aov") == "$86.00"
    assert kpi(html, "new_customers") == "3"  # not 6
    assert kpi(html, "discount") == "$63.00"
    assert kpi(html, "discount_per_new_customer") == "$21.00"
    assert kpi(html, "redemptions") == "8"
    assert kpi(html, "orders") == "5"
    # and the daily CSV of all coupons says the same, day by day
    rows = read_csv(superuser.get(CSV, {"kind": "daily"}))
    assert rows[0] == [
        "day",
        "validations",
        "redemptions",
        "orders",
        "discount",
        "order_value",
        "revenue_impact",
        "new_customers",
    ]
    assert rows[-3:] == [
        [(today - timedelta(days=2)).isoformat(), "4", "4", "3", "25.00", "200.00", "175.00", "2"],
        [(today - timedelta(days=1)).isoformat(), "0", "0", "0", "0.00", "0.00", "0.00", "0"],
        [today.isoformat(), "0", "4", "2", "38.00", "230.00", "192.00", "1"],
    ]
    # while a coupon's own view counts each of its orders
    typed_html = superuser.get(PAGE, {"coupon": "TYPED10"}).content.decode()
    assert (
        kpi(typed_html, "redemptions"),
        kpi(typed_html, "order_value"),
        kpi(typed_html, "new_customers"),
    ) == ("3", "$340.00", "2")
    top = {row[0]: row for row in read_csv(superuser.get(CSV, {"kind": "top"}))[1:]}
    assert (top["PROMO5"][2], top["PROMO5"][6]) == ("3", "330.00")  # redemptions, value


# --- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"start": "2026-13-45"}, "start", "Enter a valid date."),
        ({"end": "yesterday"}, "end", "Enter a valid date."),
        ({"start": "2026-11-10", "end": "2026-11-01"}, "start", "after the end date"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "start", "at most 366 days"),
        ({"coupon": "NOPE"}, "coupon", "No coupon with the code NOPE."),
        ({"campaign": "not-a-uuid"}, "campaign", "is not a valid UUID."),
        (
            {"campaign": "00000000-0000-0000-0000-000000000000"},
            "campaign",
            "Select a valid choice.",
        ),
        ({"currency": "XXX"}, "currency", "Select a valid choice."),
    ],
)
def test_bad_filters_are_form_errors(superuser, params, field, message):
    response = superuser.get(PAGE, params)
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors
    assert message in " ".join(form.errors[field])
    assert b"errornote" in response.content
    assert b"errorlist" in response.content
    assert response.context["data"] is None  # no numbers for filters that are wrong


def test_bad_filters_on_csv_are_a_400(superuser):
    response = superuser.get(CSV, {"start": "junk"})
    assert response.status_code == 400
    assert b"start" in response.content
    assert superuser.get(CSV, {"kind": "everything"}).status_code == 400


def test_coupon_filter_shows_that_coupon_with_its_budget(superuser):
    coupon = CouponFactory(code="BUDGET", budget_minor=20_000)
    other = CouponFactory(code="OTHER")
    make_activity(coupon)
    make_activity(other, {0: (5, [("x-1", 3_000, 300, True)])})
    response = superuser.get(PAGE, {"coupon": "budget"})  # codes are case-insensitive
    assert response.status_code == 200
    html = response.content.decode()
    assert "Coupon BUDGET" in html
    assert kpi(html, "validations") == "9"
    assert kpi(html, "redemptions") == "4"
    assert 'data-kpi="budget"' in html
    assert "<progress" in html
    assert "spent of $200.00" in html
    assert response.context["data"]["top"] is None  # a coupon's page has its days instead
    assert 'id="per-day"' in html
    assert reverse("admin:analytics_simulationrun_simulate", args=[coupon.pk]) in html


def test_campaign_filter_shows_its_coupon_and_inventory(superuser):
    from coupons.campaigns.tests.support import make_campaign

    campaign = make_campaign(inventory=50)
    make_activity(campaign.coupon)
    response = superuser.get(PAGE, {"campaign": str(campaign.pk)})
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Campaign {campaign.name}" in html
    assert kpi(html, "redemptions") == "4"
    assert kpi(html, "claimed") == "0 / 50"
    both = superuser.get(PAGE, {"campaign": str(campaign.pk), "coupon": campaign.coupon.code})
    assert "Choose a coupon or a campaign" in " ".join(both.context["form"].errors["campaign"])


def test_default_range_is_the_last_30_days(superuser):
    response = superuser.get(PAGE)
    data = response.context["form"].cleaned_data
    assert data["end"] == timezone.localdate()
    assert (data["end"] - data["start"]).days == 29


def test_chart_data_is_on_the_page(superuser):
    coupon = CouponFactory(code="CHART")
    days = make_activity(coupon)
    first = days[0]
    response = superuser.get(PAGE, {"start": first.isoformat(), "end": days[-1].isoformat()})
    html = response.content.decode()
    raw = html.split('<script id="analytics-series" type="application/json">', 1)[1]
    series = json.loads(raw.split("</script>", 1)[0])
    assert series["labels"] == [d.isoformat() for d in days]
    assert series["redemptions"] == [2, 1, 1]
    assert series["validations"] == [4, 2, 3]
    assert series["discount"] == [30.0, 5.0, 15.0]
    assert 'data-chart="redemptions"' in html
    assert 'data-chart="funnel"' in html
    assert "/static/js/Chart.min.js" in html
    assert "/static/analytics/charts.js" in html


# --- CSV ------------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="coupon-analytics-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_daily_csv_has_the_days_and_their_numbers(superuser):
    coupon = CouponFactory(code="CSVDAY")
    days = make_activity(coupon)
    response = superuser.get(
        CSV,
        {
            "kind": "daily",
            "coupon": "CSVDAY",
            "start": days[0].isoformat(),
            "end": days[-1].isoformat(),
        },
    )
    rows = read_csv(response)
    assert "CSVDAY" in response["Content-Disposition"]
    assert rows[0] == [
        "day",
        "validations",
        "redemptions",
        "orders",
        "discount",
        "order_value",
        "revenue_impact",
        "new_customers",
    ]
    assert rows[1:] == [
        [days[0].isoformat(), "4", "2", "2", "30.00", "300.00", "270.00", "2"],
        [days[1].isoformat(), "2", "1", "1", "5.00", "50.00", "45.00", "0"],
        [days[2].isoformat(), "3", "1", "1", "15.00", "150.00", "135.00", "1"],
    ]


def test_top_csv_lists_the_coupons(superuser):
    make_activity(CouponFactory(code="TOPA", description="=HYPERLINK(evil)"))
    make_activity(CouponFactory(code="TOPB"), {0: (1, [("y-1", 1_000, 100, False)])})
    rows = read_csv(superuser.get(CSV, {"kind": "top"}))
    assert rows[0][:4] == ["code", "description", "redemptions", "validations"]
    by_code = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert [row[0] for row in rows[1:]] == ["TOPA", "TOPB"]  # most redemptions first
    assert by_code["TOPA"]["redemptions"] == "4"
    assert by_code["TOPA"]["discount"] == "50.00"
    assert by_code["TOPB"]["redemptions"] == "1"
    assert by_code["TOPB"]["order_value"] == "10.00"
    # A description typed by staff is never run as a spreadsheet formula.
    assert by_code["TOPA"]["description"] == "'=HYPERLINK(evil)"


def test_page_links_both_csv_files_with_its_filters(superuser):
    response = superuser.get(PAGE, {"currency": "USD", "start": "2026-11-01", "end": "2026-11-20"})
    links = {link["kind"]: link["url"] for link in response.context["csv_links"]}
    assert set(links) == {"daily", "top"}
    assert "start=2026-11-01" in links["daily"]
    assert "end=2026-11-20" in links["daily"]
    assert links["top"].endswith("kind=top")


# --- what-if simulation ---------------------------------------------------------------------


def cart_event(customer: str, *, currency="USD", price="50.00", quantity=2, back_days=1):
    cart = {
        "currency": currency,
        "shipping": "5.00",
        "items": [
            {"sku": "SKU-1", "category": "general", "unit_price": price, "quantity": quantity}
        ],
    }
    return {
        "kind": "cart",
        "occurred_at": timezone.now() - timedelta(days=back_days),
        "customer_id": customer,
        "currency": currency,
        "order_value_minor": int(float(price) * 100) * quantity,
        "payload": {"customer": {"id": customer, "segments": [], "orders_count": 1}, "cart": cart},
    }


def simulate_url(coupon) -> str:
    return reverse("admin:analytics_simulationrun_simulate", args=[coupon.pk])


def test_simulation_form_runs_and_the_run_page_shows_the_result(
    marketing_client, django_capture_on_commit_callbacks
):
    # given: three carts seen this week, two of them in the coupon's currency
    coupon = CouponFactory(code="WHATIF", budget_minor=10_000, active=False)  # a draft
    events.write(
        [cart_event("s-1"), cart_event("s-2", back_days=3), cart_event("s-3", currency="EUR")]
    )
    form_page = marketing_client.get(simulate_url(coupon))
    assert form_page.status_code == 200
    assert b"What-if: run against the carts of the last N days" in form_page.content
    assert form_page.context["form"]["days"].value() == 14
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = marketing_client.post(simulate_url(coupon), {"days": "14"})
    # then: the run exists, ran (eager Celery) and its page shows the result
    run = coupon.simulation_runs.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:analytics_simulationrun_change", args=[run.pk])
    assert run.requested_by.username == "mia"
    assert run.days == 14
    page = marketing_client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "<progress" in html
    assert 'http-equiv="refresh"' not in html  # done: no reload

    def shown(key):
        return html.split(f'data-result="{key}">', 1)[1].split("</div>", 1)[0].strip()

    assert shown("carts") == "3"
    assert shown("eligible_carts") == "2 (66.7%)"
    assert shown("expected_redemptions") == "2"
    assert shown("discount") == "$20.00"  # 10% of two $100.00 carts
    assert shown("budget") == "$100.00"
    assert shown("budget_burn").startswith("20.0%")
    assert 'id="run-per-day"' in html
    assert "currency_mismatch" in html  # the EUR cart
    header = html.split('id="run-per-day"', 1)[1].split("</thead>", 1)[0]
    assert [c.split("</th>")[0] for c in header.split('scope="col">')[1:]] == [
        "Day",
        "Carts",
        "Eligible",
        "Redemptions",
        "Discount",
    ]
    all_runs = marketing_client.get(
        reverse("admin:analytics_simulationrun_changelist"), {"coupon__id__exact": coupon.pk}
    )
    assert all_runs.status_code == 200
    assert b"WHATIF" in all_runs.content


def test_a_running_simulation_page_reloads_itself(marketing_client):
    from coupons.analytics.models import SimulationRun

    coupon = CouponFactory()
    run = SimulationRun.objects.create(
        coupon=coupon, days=7, status="running", carts_total=200, carts_done=50
    )
    page = marketing_client.get(reverse("admin:analytics_simulationrun_change", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'http-equiv="refresh"' in html
    assert 'value="0.25"' in html
    listing = marketing_client.get(reverse("admin:analytics_simulationrun_changelist"))
    assert listing.status_code == 200
    assert b'http-equiv="refresh"' in listing.content
    assert b"50/200" in listing.content


@pytest.mark.parametrize("days", ["0", "91", "abc", ""])
def test_simulation_days_out_of_range_is_a_form_error(marketing_client, days):
    coupon = CouponFactory()
    response = marketing_client.post(simulate_url(coupon), {"days": days})
    assert response.status_code == 200
    assert response.context["form"].errors["days"]
    assert not coupon.simulation_runs.exists()


def test_simulation_needs_the_csrf_token(django_user_model):
    from django.test import Client

    coupon = CouponFactory()
    user = django_user_model.objects.create_superuser("csrf", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(simulate_url(coupon), {"days": "14"}).status_code == 403
    assert not coupon.simulation_runs.exists()
    # and the form carries the token
    assert b"csrfmiddlewaretoken" in client.get(simulate_url(coupon)).content


def test_simulation_is_refused_without_permission(outsider):
    coupon = CouponFactory()
    assert outsider.get(simulate_url(coupon)).status_code == 403
    assert outsider.post(simulate_url(coupon), {"days": "14"}).status_code == 403
    runs = reverse("admin:analytics_simulationrun_changelist")
    assert outsider.get(runs).status_code == 403
    assert not coupon.simulation_runs.exists()


def test_runs_are_read_only(marketing_client):
    coupon = CouponFactory()
    assert marketing_client.get(reverse("admin:analytics_simulationrun_add")).status_code == 403
    from coupons.analytics.models import SimulationRun

    run = SimulationRun.objects.create(coupon=coupon, days=7)
    page = marketing_client.get(reverse("admin:analytics_simulationrun_change", args=[run.pk]))
    assert b'name="_save"' not in page.content


def test_filters_show_the_dates_used(superuser):
    response = superuser.get(PAGE, {"end": "2026-06-30"})
    form = response.context["form"]
    assert form["start"].value() == "2026-06-01"
    assert form["end"].value() == "2026-06-30"
    assert form["currency"].value() == "USD"
    assert b'value="2026-06-01"' in response.content
