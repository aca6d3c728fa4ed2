"""Finance pages of the admin: the billing overview (KPIs, four charts, the months as a
table), the dunning list, an invoice as HTML, and the refund form.

Views' helpers only: forms, and the page data built from `billing.reporting` and
`billing.selectors`, formatted for people. Money is integer minor units until it is
shown (`money_text`); a chart's point becomes a float only in `chart_series`, the last
step, because Chart.js plots JSON numbers. `billing.admin` wires these into the admin.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils import timezone

from billing import reporting
from billing.models import Invoice
from core import money

DASH = "—"
DEFAULT_MONTHS = 12
MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


# --- formatting -------------------------------------------------------------------------


def money_text(minor: int | None, currency: str) -> str:
    """Minor units -> "$10.00", "-$5.00", "EUR 20.00"."""
    if minor is None:
        return DASH
    text = money.display(abs(minor), currency)
    return f"-{text}" if minor < 0 else text


def amounts_text(amounts: dict[str, int]) -> str:
    """{"USD": 1000, "EUR": 2000} -> "EUR 20.00 · $10.00" (nothing: "0")."""
    if not amounts:
        return "0"
    return " · ".join(money_text(value, cur) for cur, value in sorted(amounts.items()))


def percent_text(rate: Decimal | None) -> str:
    return DASH if rate is None else f"{rate * 100:.1f}%"


# --- the overview -----------------------------------------------------------------------


class OverviewForm(forms.Form):
    """The overview's GET filters: the last month shown and how many months. Unbound
    fields take their defaults (this month, 12 months); a bad value is a form error on the
    page, never a 500."""

    end = forms.CharField(
        required=False,
        label="Up to month",
        max_length=7,
        widget=forms.TextInput(attrs={"size": 8, "placeholder": "YYYY-MM"}),
        help_text="YYYY-MM; default: this month.",
    )
    months = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=reporting.MAX_MONTHS,
        label="Months",
        widget=forms.NumberInput(attrs={"style": "width:5em"}),
        help_text=f"1-{reporting.MAX_MONTHS}; default {DEFAULT_MONTHS}.",
    )

    def clean_end(self) -> date:
        text = (self.cleaned_data.get("end") or "").strip()
        if not text:
            return timezone.localdate().replace(day=1)
        match = MONTH_PATTERN.match(text)
        if not match or not (1 <= int(match[2]) <= 12) or not (2000 <= int(match[1]) <= 2999):
            raise forms.ValidationError("Enter a month as YYYY-MM, such as 2026-03.")
        return date(int(match[1]), int(match[2]), 1)

    def clean_months(self) -> int:
        return self.cleaned_data.get("months") or DEFAULT_MONTHS


def overview_form(params) -> OverviewForm:
    data = {key: params.get(key) for key in OverviewForm.base_fields if params.get(key)}
    return OverviewForm(data)


def chart_series(labels: list[str], mrr: dict, flow, dunning, trials) -> dict:
    """The charts' data, for `json_script`: MRR in major units and rates in percent, as
    points to draw (money.chart_point)."""
    return {
        "labels": labels,
        "mrr": [
            {
                "currency": cur,
                "data": [money.chart_point(money.to_major(m.amount_minor, cur)) for m in values],
            }
            for cur, values in mrr.items()
        ],
        "new": [f.new for f in flow],
        "churned": [f.churned for f in flow],
        "dunning": {
            "recovered": [d.recovered for d in dunning],
            "lost": [d.lost for d in dunning],
            "open": [d.still_open for d in dunning],
            "rate": [None if d.rate is None else money.chart_point(d.rate * 100) for d in dunning],
        },
        "trials": {
            "converted": [t.converted for t in trials],
            "not_converted": [t.ended - t.converted for t in trials],
            "rate": [None if t.rate is None else money.chart_point(t.rate * 100) for t in trials],
        },
    }


def overview_data(form: OverviewForm) -> dict:
    """Everything the overview shows for valid filters."""
    months = reporting.months_ending(form.cleaned_data["end"], form.cleaned_data["months"])
    labels = [m.label for m in months]
    mrr = reporting.mrr_detail(months)
    flow = reporting.subscriptions_flow(months)
    dunning = reporting.dunning_recovery(months)
    trials = reporting.trial_conversion(months)
    dunning_total = reporting.dunning_total(dunning)
    trial_total = reporting.trial_total(trials)
    past_due = reporting.past_due()
    at_risk = reporting.amount_at_risk()
    latest = {cur: values[-1].amount_minor for cur, values in mrr.items()}
    rows = [
        {
            "month": label,
            "mrr": [
                {
                    "text": money_text(mrr[cur][i].amount_minor, cur),
                    "paying": mrr[cur][i].subscriptions,
                }
                for cur in mrr
            ],
            "new": flow[i].new,
            "churned": flow[i].churned,
            "net": flow[i].net,
            "dunning": dunning[i],
            "dunning_rate": percent_text(dunning[i].rate),
            "trials": trials[i],
            "trial_rate": percent_text(trials[i].rate),
        }
        for i, label in enumerate(labels)
    ]
    return {
        "scope": f"{labels[0]} to {labels[-1]}",
        "currencies": list(mrr),
        "kpis": [
            {
                "key": "mrr",
                "label": f"MRR {labels[-1]}",
                "value": amounts_text(latest),
                "hint": "Paid recurring revenue in force at the month's end, yearly plans / 12",
            },
            {
                "key": "new",
                "label": "New subscriptions",
                "value": str(sum(f.new for f in flow)),
                "hint": "Started (trial or paid) in these months",
            },
            {
                "key": "churned",
                "label": "Churned subscriptions",
                "value": str(sum(f.churned for f in flow)),
                "hint": "Cancelled or expired after starting",
            },
            {
                "key": "dunning_recovery",
                "label": "Dunning recovery",
                "value": percent_text(dunning_total.rate),
                "hint": f"{dunning_total.part} of {dunning_total.whole} past-due episodes "
                "back to active",
            },
            {
                "key": "trial_conversion",
                "label": "Trial conversion",
                "value": percent_text(trial_total.rate),
                "hint": f"{trial_total.part} of {trial_total.whole} ended trials paid",
            },
            {
                "key": "past_due",
                "label": "Past due now",
                "value": str(len(past_due)),
                "hint": f"At risk: {amounts_text(at_risk)}",
            },
        ],
        "series": chart_series(labels, mrr, flow, dunning, trials),
        "rows": rows,
        "has_data": any(latest.values())
        or any(f.new or f.churned for f in flow)
        or any(t.ended for t in trials),
    }


# --- dunning ----------------------------------------------------------------------------


def dunning_data() -> dict:
    rows = reporting.past_due()
    at_risk = reporting.amount_at_risk()
    return {
        "rows": [
            {
                "row": row,
                "sub": row.subscription,
                "customer": row.subscription.customer,
                "amount_text": money_text(row.amount_due_minor, row.currency),
            }
            for row in rows
        ],
        "totals": [
            {"currency": cur, "amount": amount, "text": money_text(amount, cur)}
            for cur, amount in sorted(at_risk.items())
        ],
        "grace_days": settings.BILLING_GRACE_DAYS,
        "retry_days": ", ".join(str(d) for d in settings.BILLING_DUNNING_RETRY_DAYS),
    }


# --- one invoice ------------------------------------------------------------------------


def invoice_view_data(invoice: Invoice) -> dict:
    """An invoice as a document: its lines and totals, formatted."""
    cur = invoice.currency
    refundable = max(invoice.amount_paid_minor - invoice.amount_refunded_minor, 0)
    totals = [
        ("Subtotal", "subtotal", money_text(invoice.subtotal_minor, cur)),
        *(
            [("Discount", "discount", money_text(-invoice.discount_minor, cur))]
            if invoice.discount_minor
            else []
        ),
        *(
            [("Credit applied", "credit", money_text(-invoice.credit_applied_minor, cur))]
            if invoice.credit_applied_minor
            else []
        ),
        ("Total", "total", money_text(invoice.total_minor, cur)),
        ("Amount paid", "paid", money_text(invoice.amount_paid_minor, cur)),
        *(
            [("Refunded", "refunded", money_text(-invoice.amount_refunded_minor, cur))]
            if invoice.amount_refunded_minor
            else []
        ),
        ("Amount due", "due", money_text(invoice.amount_due_minor, cur)),
    ]
    return {
        "invoice": invoice,
        "customer": invoice.customer,
        "lines": [
            {
                "line": line,
                "amount_text": money_text(line.amount_minor, cur),
            }
            for line in invoice.lines.all()
        ],
        "totals": totals,
        "attempts": [
            {"attempt": a, "amount_text": money_text(a.amount_minor, a.currency)}
            for a in invoice.attempts.order_by("created_at")
        ],
        "credit_notes": [
            {"note": n, "amount_text": money_text(n.amount_minor, n.currency)}
            for n in invoice.credit_notes.order_by("created_at")
        ],
        "refundable_minor": refundable,
        "refundable_text": money_text(refundable, cur),
    }


class RefundForm(forms.Form):
    amount = forms.CharField(
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"size": 10}),
        help_text="In the invoice's currency, such as 5.00; empty: everything refundable.",
    )
    reason = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"size": 50})
    )

    def __init__(self, *args, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_amount(self) -> int | None:
        text = (self.cleaned_data.get("amount") or "").strip()
        if not text:
            return None
        try:
            minor = money.parse_amount(text, self.currency)
        except money.MoneyError as exc:
            raise forms.ValidationError(str(exc)) from None
        if minor <= 0:
            raise forms.ValidationError("Enter an amount above zero.")
        return minor
