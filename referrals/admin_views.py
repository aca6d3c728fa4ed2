"""The referrals overview page of the admin (KPIs, four charts, its tables) and its CSV
downloads.

Views' helpers only: the range form, and the page data built from `referrals.reporting`,
formatted for people. Money stays integer minor units until shown
(`core.money.display`, `format_amount` in the CSV); a chart's point becomes a float only
in `chart_series`, because Chart.js plots JSON numbers. `referrals.admin` wires these
into the admin (URLs, the `referrals.view_referral` check).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.http import StreamingHttpResponse
from django.utils import timezone

from core import money
from referrals import reporting

DASH = "—"
DEFAULT_WEEKS = 12
TOP_LIMIT = 10
CSV_LIMIT = 1000
CSV_COLUMNS = {
    "funnel": ("step", "referrals", "rate"),
    "weekly": ("week", "signups", "referred", "organic", "referred_share"),
    "referrers": ("referrer_id", "code", "signed_up", "converted", "rewarded", "rejected"),
    "rewards": ("currency", "given", "given_amount", "clawed_back", "clawed_back_amount", "net"),
}
CSV_KINDS = tuple(CSV_COLUMNS)


def money_text(minor: int, currency: str) -> str:
    text = money.display(abs(minor), currency)
    return f"-{text}" if minor < 0 else text


def amounts_text(amounts: dict[str, int]) -> str:
    if not amounts:
        return "0"
    return " · ".join(money_text(v, cur) for cur, v in sorted(amounts.items()))


def percent_text(rate: Decimal | None) -> str:
    return DASH if rate is None else f"{rate * 100:.1f}%"


def rate_value(rate: Decimal | None) -> str:
    """A rate for the CSV: a decimal fraction to 4 places, empty when undefined."""
    return "" if rate is None else f"{rate:.4f}"


# --- the range --------------------------------------------------------------------------


def default_start(end: date) -> date:
    """The Monday 11 weeks before the end's week: the last 12 weeks."""
    return reporting.monday(end) - timedelta(weeks=DEFAULT_WEEKS - 1)


class RangeForm(forms.Form):
    """The page's GET filters, both optional (default: the last 12 weeks up to today,
    UTC); a bad value is a form error on the page, never a 500."""

    start = forms.DateField(required=False, widget=AdminDateWidget, label="From")
    end = forms.DateField(required=False, widget=AdminDateWidget, label="To")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        end = cleaned.get("end") or timezone.now().date()  # USE_TZ: a UTC date
        start = cleaned.get("start") or default_start(end)
        if start > end:
            raise forms.ValidationError("“From” must not be after “To”.")
        if (end - start).days + 1 > reporting.MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {reporting.MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def query(self) -> str:
        data = self.cleaned_data
        return urlencode({"start": data["start"].isoformat(), "end": data["end"].isoformat()})


def range_form(params) -> RangeForm:
    """The form for the request's GET; when valid, bound to the dates in effect (the
    defaults filled in), so the page's inputs show the range it shows."""
    form = RangeForm({key: params.get(key) for key in RangeForm.base_fields if params.get(key)})
    if not form.is_valid():
        return form
    shown = RangeForm({key: form.cleaned_data[key].isoformat() for key in ("start", "end")})
    shown.is_valid()
    return shown


# --- the page ---------------------------------------------------------------------------


def funnel_rows(f: reporting.Funnel) -> list[dict]:
    return [
        {"step": "signed_up", "label": "Signed up", "count": f.signed_up, "rate": None},
        {
            "step": "converted",
            "label": "Converted",
            "count": f.converted,
            "rate": f.conversion_rate,
        },
        {"step": "rewarded", "label": "Rewarded", "count": f.rewarded, "rate": f.reward_rate},
    ]


def chart_series(
    labels: list[str],
    f: reporting.Funnel,
    weekly: list[reporting.WeekSignups],
    top: list[reporting.ReferrerRow],
    rewards_weekly: dict[str, list[reporting.RewardWeek]],
) -> dict:
    """The charts' data, for `json_script`: amounts in major units, as points to draw
    (money.chart_point); every figure shown as text is formatted from integers."""

    def major(minor: int, cur: str) -> float:
        return money.chart_point(money.to_major(minor, cur))

    return {
        "labels": labels,
        "funnel": {
            "labels": [row["label"] for row in funnel_rows(f)],
            "data": [f.signed_up, f.converted, f.rewarded],
        },
        "referred": [w.referred for w in weekly],
        "organic": [w.organic for w in weekly],
        "referrers": {
            "labels": [r.referrer_id for r in top],
            "rewarded": [r.rewarded for r in top],
            "converted": [r.converted for r in top],
        },
        "rewards": [
            {
                "currency": cur,
                "given": [major(w.given_minor, cur) for w in values],
                "clawed_back": [major(w.clawed_back_minor, cur) for w in values],
            }
            for cur, values in rewards_weekly.items()
        ],
    }


def page_data(form: RangeForm) -> dict:
    """Everything the page shows, for a valid form."""
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    f = reporting.funnel(start, end)
    weekly = reporting.signups_by_week(start, end)
    top = reporting.top_referrers(start, end, TOP_LIMIT)
    rewards = reporting.rewards(start, end)
    labels = [f"{w:%Y-%m-%d}" for w in reporting.weeks(start, end)]
    signups = sum(w.signups for w in weekly)
    referred = sum(w.referred for w in weekly)
    return {
        "scope": f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
        "kpis": [
            {
                "key": "signed_up",
                "label": "Referred signups",
                "value": str(f.signed_up),
                "hint": "Referrals whose invitee signed up in the range",
            },
            {
                "key": "conversion",
                "label": "Conversion",
                "value": percent_text(f.conversion_rate),
                "hint": f"{f.converted} of {f.signed_up} reached a first paid invoice",
            },
            {
                "key": "rewarded",
                "label": "Rewarded",
                "value": str(f.rewarded),
                "hint": f"{f.rejected} rejected, {f.held} held for review",
            },
            {
                "key": "referred_share",
                "label": "Referred share of signups",
                "value": percent_text(reporting.ratio(referred, signups)),
                "hint": f"{referred} referred, {signups - referred} organic of {signups}",
            },
            {
                "key": "rewards_net",
                "label": "Rewards net",
                "value": amounts_text({r.currency: r.net_minor for r in rewards}),
                "hint": "Given minus clawed back in the range",
            },
        ],
        "funnel": [{**row, "rate_text": percent_text(row["rate"])} for row in funnel_rows(f)],
        "weeks": [
            {"week": label, "row": w, "share": percent_text(w.referred_share)}
            for label, w in zip(labels, weekly, strict=True)
        ],
        "referrers": top,
        "rewards": [
            {
                "row": r,
                "given_text": money_text(r.given_minor, r.currency),
                "clawed_back_text": money_text(r.clawed_back_minor, r.currency),
                "net_text": money_text(r.net_minor, r.currency),
            }
            for r in rewards
        ],
        "series": chart_series(labels, f, weekly, top, reporting.rewards_by_week(start, end)),
        "has_data": bool(signups or f.signed_up or rewards),
    }


# --- CSV --------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def _safe(text: str) -> str:
    """Ids are free text from clients: keep a spreadsheet from reading one as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(form: RangeForm, kind: str) -> Iterable[list]:
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    if kind == "funnel":
        for row in funnel_rows(reporting.funnel(start, end)):
            yield [row["step"], row["count"], rate_value(row["rate"])]
    elif kind == "weekly":
        for w in reporting.signups_by_week(start, end):
            yield [
                w.week.isoformat(),
                w.signups,
                w.referred,
                w.organic,
                rate_value(w.referred_share),
            ]
    elif kind == "referrers":
        for r in reporting.top_referrers(start, end, CSV_LIMIT):
            yield [_safe(r.referrer_id), r.code, r.signed_up, r.converted, r.rewarded, r.rejected]
    else:
        for t in reporting.rewards(start, end):
            yield [
                t.currency,
                t.given,
                money.format_amount(t.given_minor, t.currency),
                t.clawed_back,
                money.format_amount(t.clawed_back_minor, t.currency),
                money.format_amount(t.net_minor, t.currency),
            ]


def csv_lines(form: RangeForm, kind: str) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS[kind])
    for row in csv_rows(form, kind):
        yield writer.writerow(row)


def csv_download(form: RangeForm, kind: str) -> StreamingHttpResponse:
    """One of the page's tables as CSV, an attachment named after it and the range."""
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    response = StreamingHttpResponse(csv_lines(form, kind), content_type="text/csv; charset=utf-8")
    filename = f"referrals-{kind}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
