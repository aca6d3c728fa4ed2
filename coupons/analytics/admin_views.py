"""The marketing analytics page, its CSV downloads and the what-if simulation form.

Views only: they validate the filter form, call `analytics.selectors` (or
`analytics.services.simulation_start`) and render. The numbers come from the selectors
as the API gives them (money as decimal strings, rates as floats or null), the
all-coupons view's from `selectors.site_stats` (a stacked order counted once); this
module only formats them for people.

`analytics.admin` wires these views into the Django admin (URLs, permissions).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.utils import timezone

from core import money
from coupons.analytics import selectors
from coupons.campaigns.models import Campaign
from coupons.models import Coupon
from coupons.selectors import normalize_code

DEFAULT_DAYS = 30  # the default range starts at the first active day of the last 30...
MIN_DAYS = 7  # ...and shows at least a week (default_start)
MAX_DAYS = 366
TOP_LIMIT = 20
CURRENCY_CHOICES = [(c, c) for c in sorted(money.CURRENCIES)]
DASH = "—"

# CSV columns, in the order of the files (and of the selectors' dict keys).
DAILY_COLUMNS = (
    "day",
    "validations",
    "redemptions",
    "orders",
    "discount",
    "order_value",
    "revenue_impact",
    "new_customers",
)
TOP_COLUMNS = (
    "code",
    "description",
    "redemptions",
    "validations",
    "redemption_rate",
    "discount",
    "order_value",
    "revenue_impact",
    "new_customers",
    "budget",
    "budget_spent",
)
CSV_KINDS = ("daily", "top")
# A run's per-day columns in reading order (the JSON column does not keep key order).
PER_DAY_ORDER = ("day", "carts", "eligible", "redemptions", "discount")


# --- filter form ------------------------------------------------------------------------


class AnalyticsFilterForm(forms.Form):
    """The page's GET filters. Unbound fields take their defaults (up to today from the
    first day with activity in the last 30, at least 7 days: `default_start`; all coupons;
    USD); a bad value is a form error shown on the page, never a 500."""

    start = forms.DateField(required=False, widget=AdminDateWidget, label="From")
    end = forms.DateField(required=False, widget=AdminDateWidget, label="To")
    coupon = forms.CharField(
        required=False,
        max_length=64,
        label="Coupon code",
        widget=forms.TextInput(attrs={"size": 14}),
    )
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.order_by("-starts_at").only("id", "name"),
        required=False,
        empty_label="All campaigns",
    )
    currency = forms.ChoiceField(
        choices=CURRENCY_CHOICES,
        required=False,
        initial="USD",
        help_text="For all coupons; a coupon or campaign has its own currency.",
    )

    def clean_coupon(self) -> Coupon | None:
        code = normalize_code(self.cleaned_data.get("coupon") or "")
        if not code:
            return None
        coupon = Coupon.objects.filter(code=code).first()
        if coupon is None:
            raise ValidationError(f"No coupon with the code {code}.")
        return coupon

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        end = cleaned.get("end") or timezone.localdate()
        start = cleaned.get("start")
        if start is None:
            start = end - timedelta(days=DEFAULT_DAYS - 1)
            if not (cleaned.get("coupon") and cleaned.get("campaign")):  # else an error
                start = default_start(
                    end,
                    coupon=cleaned.get("coupon"),
                    campaign=cleaned.get("campaign"),
                    currency=cleaned.get("currency") or "USD",
                )
        if start > end:
            self.add_error("start", "The start date is after the end date.")
        elif (end - start).days + 1 > MAX_DAYS:
            self.add_error("start", f"Choose at most {MAX_DAYS} days.")
        if cleaned.get("coupon") and cleaned.get("campaign"):
            self.add_error("campaign", "Choose a coupon or a campaign, not both.")
        cleaned.update(start=start, end=end, currency=cleaned.get("currency") or "USD")
        return cleaned

    def query(self, **changes) -> str:
        """The cleaned filters as a query string (for the CSV links and table links)."""
        data = self.cleaned_data
        params = {
            "start": data["start"].isoformat(),
            "end": data["end"].isoformat(),
            "currency": data["currency"],
        }
        if data.get("coupon"):
            params["coupon"] = data["coupon"].code
        if data.get("campaign"):
            params["campaign"] = str(data["campaign"].pk)
        params.update(changes)
        return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def default_start(
    end: date, *, coupon: Coupon | None, campaign: Campaign | None, currency: str
) -> date:
    """The first day of the default range: the first day with validations or redemptions
    in the scope among the DEFAULT_DAYS up to `end`, at the latest MIN_DAYS before it, so
    the charts start with the data (the demo's two weeks, a coupon launched on Monday)
    instead of weeks of zeros. No activity at all: the whole DEFAULT_DAYS."""
    earliest = end - timedelta(days=DEFAULT_DAYS - 1)
    if campaign is not None:
        coupon = campaign.coupon
    series = selectors.daily_series(
        start=earliest, end=end, coupon=coupon, currency=None if coupon else currency
    )
    first = next((d["day"] for d in series if d["validations"] or d["redemptions"]), None)
    if first is None:
        return earliest
    return min(date.fromisoformat(first), end - timedelta(days=MIN_DAYS - 1))


def filter_form(params) -> AnalyticsFilterForm:
    """Bound to the query string. The dates left out are filled in afterwards with the
    ones used, so the fields show what the page shows."""
    data = {
        key: params.get(key)
        for key in AnalyticsFilterForm.base_fields
        if params.get(key) not in (None, "")
    }
    data.setdefault("currency", "USD")
    form = AnalyticsFilterForm(data)
    if form.is_valid():
        data.setdefault("start", form.cleaned_data["start"].isoformat())
        data.setdefault("end", form.cleaned_data["end"].isoformat())
    return form


# --- numbers --------------------------------------------------------------------------------


def _dec(value) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _ratio(part, whole) -> Decimal | None:
    return _dec(part) / _dec(whole) if whole else None


def money_text(value, currency: str) -> str:
    """ "37.50" -> "$37.50" (the admin's money display), None -> a dash."""
    if value in (None, ""):
        return DASH
    amount = _dec(value)
    sign = "-" if amount < 0 else ""
    symbol = money._SYMBOLS.get(currency)  # the one table of symbols
    text = f"{abs(amount):,}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{currency} {text}"


def percent_text(rate) -> str:
    return DASH if rate is None else f"{_dec(rate) * 100:.1f}%"


def count_text(value) -> str:
    return DASH if value is None else f"{int(value):,}"


def kpi_boxes(stats: dict) -> list[dict]:
    """The KPI strip: label, value and a one-line explanation per box."""
    cur = stats["currency"]
    return [
        {
            "key": "validations",
            "label": "Validation attempts",
            "value": count_text(stats.get("validation_attempts")),
            "hint": "Codes checked at the storefront",
        },
        {
            "key": "redemptions",
            "label": "Redemptions",
            "value": count_text(stats.get("redemptions")),
            "hint": "Coupon uses on confirmed orders",
        },
        {
            "key": "orders",
            "label": "Orders",
            "value": count_text(stats.get("orders")),
            "hint": "Confirmed orders; one with two coupons counts once",
        },
        {
            "key": "redemption_rate",
            "label": "Redemption rate",
            "value": percent_text(stats.get("redemption_rate")),
            "hint": "Redemptions per validation attempt",
        },
        {
            "key": "discount",
            "label": "Discount given",
            "value": money_text(stats.get("discount_given"), cur),
            "hint": "On confirmed orders",
        },
        {
            "key": "order_value",
            "label": "Order value",
            "value": money_text(stats.get("order_value"), cur),
            "hint": "Subtotals of those orders, each once",
        },
        {
            "key": "revenue_impact",
            "label": "Revenue impact",
            "value": money_text(stats.get("revenue_impact"), cur),
            "hint": "Order value minus discount",
        },
        {
            "key": "aov",
            "label": "Average order value",
            "value": money_text(stats.get("average_order_value"), cur),
            "hint": "Order value per order; without a coupon: "
            + money_text(stats.get("average_order_value_without_coupon"), cur),
        },
        {
            "key": "new_customers",
            "label": "New customers",
            "value": count_text(stats.get("new_customers")),
            "hint": "Customers whose first order used a coupon",
        },
        {
            "key": "discount_per_new_customer",
            "label": "Discount per new customer",
            "value": money_text(stats.get("discount_per_new_customer"), cur),
            "hint": "Acquisition cost",
        },
        {
            "key": "return_rate",
            "label": "Return rate",
            "value": percent_text(stats.get("return_rate")),
            "hint": "Returned orders",
        },
        *(
            [
                {
                    "key": "claimed",
                    "label": "Units claimed",
                    "value": (
                        f"{count_text(stats.get('claimed'))} / {count_text(stats['inventory'])}"
                    ),
                    "hint": "Flash-sale inventory",
                }
            ]
            if stats.get("inventory") is not None
            else []
        ),
    ]


def budget_box(stats: dict) -> dict | None:
    """The coupon's lifetime budget: confirmed spend plus open reservations against it
    (the selector's `burn`), for a progress bar."""
    budget = stats.get("budget")
    if not budget or budget.get("budget") in (None, ""):
        return None
    cur = stats["currency"]
    total = _dec(budget["budget"])
    used = _dec(budget.get("spent")) + _dec(budget.get("reserved"))
    burn = budget.get("burn")
    return {
        "budget": money_text(budget["budget"], cur),
        "spent": money_text(budget.get("spent"), cur),
        "reserved": money_text(budget.get("reserved"), cur),
        "remaining": money_text(budget.get("remaining"), cur),
        "burn": percent_text(burn if burn is not None else _ratio(used, total)),
        "max": str(total),
        "value": str(min(used, total)),
    }


def chart_series(daily: list[dict]) -> dict:
    """The charts' data, for `json_script`: one entry per day, numbers not strings (the
    discount as a point to draw: money.chart_point); every figure shown as text is
    formatted from the Decimal (money_text)."""
    return {
        "labels": [d["day"] for d in daily],
        "validations": [int(d["validations"]) for d in daily],
        "redemptions": [int(d["redemptions"]) for d in daily],
        "discount": [money.chart_point(_dec(d["discount"])) for d in daily],
    }


def daily_rows(daily: list[dict], currency: str) -> list[dict]:
    return [
        {
            **d,
            "discount_text": money_text(d["discount"], currency),
            "order_value_text": money_text(d["order_value"], currency),
            "revenue_impact_text": money_text(d["revenue_impact"], currency),
        }
        for d in daily
    ]


def top_rows(top: list[dict], currency: str, form: AnalyticsFilterForm) -> list[dict]:
    return [
        {
            **row,
            "query": form.query(coupon=row["code"], campaign=""),
            "rate_text": percent_text(row.get("redemption_rate")),
            "discount_text": money_text(row.get("discount"), currency),
            "order_value_text": money_text(row.get("order_value"), currency),
            "revenue_impact_text": money_text(row.get("revenue_impact"), currency),
            "budget_text": money_text(row.get("budget"), currency)
            if row.get("budget") not in (None, "")
            else DASH,
            "budget_spent_text": money_text(row.get("budget_spent"), currency)
            if row.get("budget") not in (None, "")
            else DASH,
        }
        for row in top
    ]


def page_data(form: AnalyticsFilterForm) -> dict:
    """Everything the page shows for valid filters: scope, KPIs, series, tables."""
    data = form.cleaned_data
    start, end = data["start"], data["end"]
    coupon, campaign = data.get("coupon"), data.get("campaign")
    if coupon is not None:
        stats = selectors.coupon_stats(coupon, start=start, end=end)
        scope = f"Coupon {coupon.code}"
    elif campaign is not None:
        stats = selectors.campaign_stats(campaign, start=start, end=end)
        scope = f"Campaign {campaign.name}"
    else:
        currency = data["currency"]
        stats = selectors.site_stats(start=start, end=end, currency=currency)
        scope = f"All {currency} coupons"
    currency = stats["currency"]
    daily = stats.get("daily") or []
    top = None
    if coupon is None and campaign is None:
        top = top_rows(
            selectors.top_coupons(start=start, end=end, currency=currency, limit=TOP_LIMIT),
            currency,
            form,
        )
    return {
        "scope": scope,
        "filtered": coupon is not None or campaign is not None,
        "stats": stats,
        "currency": currency,
        "kpis": kpi_boxes(stats),
        "budget": budget_box(stats),
        "series": chart_series(daily),
        "daily_rows": daily_rows(daily, currency),
        "top": top,
        "has_data": any(d["validations"] or d["redemptions"] for d in daily),
    }


# --- CSV ------------------------------------------------------------------------------------


class _Echo:
    """csv.writer target that hands each row back instead of buffering the file."""

    def write(self, value: str) -> str:
        return value


def _safe_text(value) -> object:
    """Spreadsheets run cells that start with = + - @ as formulas; text columns (codes,
    descriptions typed by staff) get a leading quote. Numbers are left alone."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _csv_lines(
    columns: Iterable[str], rows: Iterable[dict], text_columns: frozenset[str] = frozenset()
) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow(
            [
                _safe_text(row.get(c))
                if c in text_columns
                else ("" if row.get(c) is None else row.get(c))
                for c in columns
            ]
        )


def csv_download(form: AnalyticsFilterForm, kind: str) -> StreamingHttpResponse:
    """`kind="daily"`: the series of the page's scope; `kind="top"`: the top coupons of
    the currency (up to 1,000). Streamed, as an attachment named after the filters."""
    data = form.cleaned_data
    start, end = data["start"], data["end"]
    coupon, campaign = data.get("coupon"), data.get("campaign")
    if kind == "top":
        rows = selectors.top_coupons(start=start, end=end, currency=data["currency"], limit=1000)
        lines = _csv_lines(TOP_COLUMNS, rows, frozenset({"code", "description"}))
        scope = data["currency"]
    else:
        if coupon is not None:
            rows = selectors.coupon_stats(coupon, start=start, end=end)["daily"]
            scope = coupon.code
        elif campaign is not None:
            rows = selectors.campaign_stats(campaign, start=start, end=end)["daily"]
            scope = f"campaign-{campaign.pk}"
        else:
            rows = selectors.daily_series(start=start, end=end, currency=data["currency"])
            scope = data["currency"]
        lines = _csv_lines(DAILY_COLUMNS, rows)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    safe_scope = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in scope)
    filename = f"coupon-analytics-{kind}-{safe_scope}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- simulation -----------------------------------------------------------------------------


class SimulationForm(forms.Form):
    days = forms.IntegerField(
        min_value=1,
        max_value=90,
        initial=14,
        label="Days",
        widget=forms.NumberInput(attrs={"class": "vIntegerField", "style": "width:5em"}),
        help_text="Replay the carts the engine priced in the last N days (1-90).",
    )


def simulation_result(run) -> dict | None:
    """A finished run's result (analytics.simulation), formatted for the page; None until
    the run has one."""
    result = run.result
    if not result:
        return None
    cur = result.get("currency") or run.coupon.currency
    carts = result.get("carts") or 0
    eligible = result.get("carts_eligible", result.get("eligible_carts")) or 0
    burn = result.get("budget_burn")
    return {
        "carts": count_text(carts),
        "eligible_carts": count_text(eligible),
        "eligible_share": percent_text(_ratio(eligible, carts)),
        "expected_redemptions": _number_text(result.get("expected_redemptions")),
        "limited_by_total": count_text(result.get("limited_by_total") or 0),
        "limited_by_customer": count_text(result.get("limited_by_customer") or 0),
        "discount": money_text(result.get("discount"), cur),
        "order_value": money_text(result.get("order_value"), cur),
        "average_discount": money_text(result.get("average_discount"), cur),
        "budget": money_text(result.get("budget"), cur),
        "budget_burn": percent_text(burn),
        "budget_burn_value": min(_dec(burn), Decimal(1)) if burn is not None else None,
        "budget_exhausted_on": result.get("budget_exhausted_on"),
        "rejections": sorted(
            (result.get("rejections") or {}).items(), key=lambda item: (-item[1], item[0])
        ),
        "per_day": _per_day(result.get("daily", result.get("per_day")) or [], cur),
    }


def simulation_rows(result: dict) -> list[tuple[str, str, str]]:
    """(label, key, value) lines of a run's result box, in reading order."""
    rows = [
        ("Carts seen", "carts", result["carts"]),
        (
            "Carts it would apply to",
            "eligible_carts",
            f"{result['eligible_carts']} ({result['eligible_share']})",
        ),
        ("Expected redemptions", "expected_redemptions", result["expected_redemptions"]),
        ("Discount cost", "discount", result["discount"]),
        ("Order value of those carts", "order_value", result["order_value"]),
        ("Average discount", "average_discount", result["average_discount"]),
        ("Budget", "budget", result["budget"]),
    ]
    if result["limited_by_total"] != "0" or result["limited_by_customer"] != "0":
        rows.append(
            (
                "Stopped by usage limits",
                "limited",
                f"{result['limited_by_total']} by the total limit, "
                f"{result['limited_by_customer']} by the per-customer limit",
            )
        )
    return rows


def _number_text(value) -> str:
    if value is None:
        return DASH
    number = _dec(value)
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.1f}"


def _per_day(rows: list[dict], currency: str) -> dict:
    """The per-day list as a table: its keys become the columns (money is formatted)."""
    known = [c for c in PER_DAY_ORDER if any(c in row for row in rows)]
    columns = known + sorted({key for row in rows for key in row} - set(known))
    money_keys = {"discount", "budget", "order_value"}

    def cell(key, value):
        if key in money_keys:
            return money_text(value, currency)
        if isinstance(value, float):
            return _number_text(value)
        return DASH if value is None else value

    return {
        "columns": [c.replace("_", " ") for c in columns],
        "rows": [[cell(c, row.get(c)) for c in columns] for row in rows],
    }
