"""The entitlements admin's two pages: the plan x feature matrix and a customer's page.

Helpers only (forms and page data); `entitlements.admin` wires them into the admin.

- The matrix: one row per plan (billing's active plans and the default plan, read
  through `billing.selectors`), one column per feature. A cell is the plan's
  `features[key]`: a checkbox for a boolean feature; for a limit or metered feature a
  whole number (blank: not enabled) or "unlimited" (stored as null). Saving writes only
  the plans whose values changed, each through `billing.services.plan_update` (billing
  owns its tables and emits `plan.updated`), all in one transaction. The form carries a
  fingerprint of what it showed: a plan or feature changed since the page was loaded
  refuses the save instead of overwriting that change.
- The customer page: what `selectors.entitlements_compute` answers (each feature's value
  and source), the usage and reservation rows, the grants and the event history; a form
  that grants the features of a plan for N days (`services.grant_create` once per
  feature, in one transaction) and a revoke per live grant (`services.grant_revoke`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django import forms
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import selectors as billing
from billing import services as billing_services
from core import money
from core.errors import DomainError, Invalid
from entitlements import engine, selectors, services
from entitlements.models import EntitlementEvent, Feature, FeatureType, Grant, Reservation, Usage

DASH = "—"
UNLIMITED = "unlimited"
# The largest limit the matrix takes (usage counters are 64-bit; this leaves room).
MAX_LIMIT = 10**12
DEFAULT_GRANT_DAYS = 14
MAX_GRANT_DAYS = 3650
# Rows shown on the customer page; more are on the model's list, filtered by customer.
PAGE_ROWS = 200
MATCHES = 20


# --- formatting -------------------------------------------------------------------------


def value_text(kind: str, value: object) -> str:
    """A plan's or grant's stored value for people: "yes", "no", "10", "unlimited", "—"
    (not mentioned, or not understood)."""
    value = engine.normalise(kind, value)
    if value is engine.ABSENT:
        return DASH
    if kind == FeatureType.BOOLEAN:
        return "yes" if value else "no"
    return UNLIMITED if value is None else str(value)


def limit_text(state: engine.FeatureState) -> str:
    if state.type == FeatureType.BOOLEAN:
        return DASH
    return UNLIMITED if state.limit is None else str(state.limit)


def remaining_text(state: engine.FeatureState) -> str:
    if state.type == FeatureType.BOOLEAN:
        return DASH
    return UNLIMITED if state.remaining is None else str(state.remaining)


def detail_text(detail: dict) -> str:
    """An event's detail, one line: "value: 10 · reason: trial extension"."""
    parts = []
    for key, value in detail.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif value is None:
            value = UNLIMITED if key == "value" else DASH
        elif isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}: {value}")
    return " · ".join(parts)


def plan_price_text(plan) -> str:
    return f"{money.display(plan.amount_minor, plan.currency)} / {plan.interval}"


# --- the matrix -------------------------------------------------------------------------


def matrix_plans() -> list:
    """The matrix's rows: the active plans (cheapest first) and the default plan, even if
    it was retired (everyone without a live subscription has its values)."""
    plans = list(billing.plans_active())
    default = billing.plan_default()
    if default is not None and default.pk not in {p.pk for p in plans}:
        plans.insert(0, default)
    return plans


def fingerprint(plans: list, features: list[Feature]) -> str:
    """What the matrix shows, as one short hash: the plans with their feature maps and
    the features with their types."""
    shown = {
        "plans": [[p.code, p.features] for p in plans],
        "features": [[f.key, f.type] for f in features],
    }
    text = json.dumps(shown, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cell_name(plan_code: str, feature_key: str) -> str:
    """A cell's field name. Plan codes and feature keys are slugs: never a dot."""
    return f"{plan_code}.{feature_key}"


def _same(a: object, b: object) -> bool:
    """Equal engine values: ABSENT and None by identity, limits by number."""
    if a is engine.ABSENT or b is engine.ABSENT or a is None or b is None:
        return a is b
    return a == b and type(a) is type(b)


@dataclass(frozen=True)
class CellChange:
    feature: Feature
    old: object
    new: object


@dataclass(frozen=True)
class PlanChange:
    plan: Any  # billing's Plan (read through billing.selectors)
    features: dict  # the plan's whole new map
    cells: list[CellChange]

    def text(self) -> str:
        cells = ", ".join(
            f"{c.feature.key} {value_text(c.feature.type, c.old)} → "
            f"{value_text(c.feature.type, c.new)}"
            for c in self.cells
        )
        return f"{self.plan.code}: {cells}"


class MatrixForm(forms.Form):
    """Every cell of the matrix in one form. Bound to a POST, `changes()` says which plans
    get which new feature map; nothing is written here."""

    state = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, data=None, *, plans: list, features: list[Feature]):
        super().__init__(data)
        self.plans = plans
        self.features = features
        self.fields["state"].initial = fingerprint(plans, features)
        for plan in plans:
            for feature in features:
                name = cell_name(plan.code, feature.key)
                label = f"{plan.name} ({plan.code}) / {feature.name} ({feature.key})"
                value = self.stored(plan, feature)
                if feature.type == FeatureType.BOOLEAN:
                    self.fields[name] = forms.BooleanField(
                        required=False,
                        label=label,
                        initial=value is True,
                        widget=forms.CheckboxInput(attrs={"aria-label": label}),
                    )
                    continue
                self.fields[name] = forms.IntegerField(
                    required=False,
                    label=label,
                    min_value=0,
                    max_value=MAX_LIMIT,
                    initial=value if isinstance(value, int) else None,
                    widget=forms.NumberInput(
                        attrs={"class": "ent-limit", "min": 0, "aria-label": label}
                    ),
                )
                self.fields[f"{name}.{UNLIMITED}"] = forms.BooleanField(
                    required=False,
                    label=f"{label}: unlimited",
                    initial=value is None,
                    widget=forms.CheckboxInput(
                        attrs={"class": "ent-unlimited", "aria-label": f"{label}: unlimited"}
                    ),
                )

    @staticmethod
    def stored(plan, feature: Feature) -> object:
        """The plan's value as the engine reads it (ABSENT: not mentioned or malformed)."""
        return engine.normalise(feature.type, plan.features.get(feature.key, engine.ABSENT))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("state") and cleaned["state"] != self.fields["state"].initial:
            raise forms.ValidationError(
                "The plans or features changed since this page was loaded; nothing was "
                "saved. The page now shows the current values: make your change again.",
                code="stale",
            )
        for plan in self.plans:
            for feature in self.features:
                if feature.type == FeatureType.BOOLEAN:
                    continue
                name = cell_name(plan.code, feature.key)
                if cleaned.get(name) is not None and cleaned.get(f"{name}.{UNLIMITED}"):
                    self.add_error(name, "Enter a number or tick unlimited, not both.")
        return cleaned

    def submitted(self, plan, feature: Feature) -> object:
        """The cell's new value: True/False; a number, None (unlimited) or ABSENT (blank:
        not enabled)."""
        name = cell_name(plan.code, feature.key)
        if feature.type == FeatureType.BOOLEAN:
            return bool(self.cleaned_data.get(name))
        if self.cleaned_data.get(f"{name}.{UNLIMITED}"):
            return None
        number = self.cleaned_data.get(name)
        return engine.ABSENT if number is None else number

    def changes(self) -> list[PlanChange]:
        """The plans whose values changed, each with its whole new map: keys the matrix
        does not show are kept as stored; a limit left blank is removed (not enabled); an
        unticked boolean is stored as false only when it was true."""
        changed = []
        for plan in self.plans:
            features = dict(plan.features)
            cells = []
            for feature in self.features:
                old = self.stored(plan, feature)
                new = self.submitted(plan, feature)
                if feature.type == FeatureType.BOOLEAN:
                    if (old is True) == new:
                        continue
                    features[feature.key] = new
                else:
                    if _same(old, new):
                        continue
                    if new is engine.ABSENT:
                        features.pop(feature.key, None)
                    else:
                        features[feature.key] = new
                cells.append(CellChange(feature, old, new))
            if cells:
                changed.append(PlanChange(plan, features, cells))
        return changed

    def error_texts(self) -> list[str]:
        texts = [str(e) for e in self.non_field_errors()]
        if "state" in self.errors:
            texts.append("The form was sent incomplete: reload the page and try again.")
        for name, errors in self.errors.items():
            if name in self.fields and name != "state":
                texts.extend(f"{self.fields[name].label}: {e}" for e in errors)
        return texts


def matrix_rows(form: MatrixForm) -> list[dict]:
    """The matrix for the template: per plan, per feature its field(s) and value text."""
    rows = []
    for plan in form.plans:
        cells = []
        for feature in form.features:
            name = cell_name(plan.code, feature.key)
            raw = plan.features.get(feature.key, engine.ABSENT)
            understood = raw is engine.ABSENT or (
                engine.normalise(feature.type, raw) is not engine.ABSENT
                and (feature.type != FeatureType.BOOLEAN or isinstance(raw, bool))
            )
            cells.append(
                {
                    "feature": feature,
                    "field": form[name],
                    "unlimited": None
                    if feature.type == FeatureType.BOOLEAN
                    else form[f"{name}.{UNLIMITED}"],
                    "text": value_text(feature.type, raw),
                    "odd_value": None if understood else json.dumps(raw),
                }
            )
        rows.append({"plan": plan, "price": plan_price_text(plan), "cells": cells})
    return rows


def matrix_save(form: MatrixForm) -> list[PlanChange]:
    """Write the changed plans through billing's service, all or nothing (a refusal of
    any plan rolls back the others and raises its DomainError)."""
    changes = form.changes()
    with transaction.atomic():
        for change in changes:
            billing_services.plan_update(
                code=change.plan.code, fields={"features": change.features}
            )
    return changes


# --- the customer page ------------------------------------------------------------------


class CustomerForm(forms.Form):
    """The customer page's GET: which customer (billing's customer id)."""

    id = forms.CharField(
        max_length=100,
        required=False,
        label="Customer id",
        widget=forms.TextInput(attrs={"size": 30, "placeholder": "the id billing uses"}),
    )


def customer_matches(text: str) -> list[str]:
    """Customer ids that entitlements knows (grants, usage, events) containing `text`."""
    if not text:
        return []
    found: set[str] = set()
    for model in (Grant, Usage, EntitlementEvent):
        found.update(
            model.objects.filter(customer_id__icontains=text)
            .order_by("customer_id")
            .values_list("customer_id", flat=True)
            .distinct()[:MATCHES]
        )
    return sorted(found)[:MATCHES]


def grant_state(grant: Grant, now: datetime) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return "live"


def _latest(queryset, ordering: list[str]) -> tuple[list, int]:
    """Up to PAGE_ROWS of the newest rows, oldest first, and how many there are."""
    total = queryset.count()
    rows = list(queryset.order_by(*(f"-{o}" for o in ordering))[:PAGE_ROWS])
    rows.reverse()
    return rows, total


def customer_data(customer_id: str) -> dict:
    """Everything the customer page shows: the effective entitlements as computed from
    PostgreSQL (not the cache), the rows behind them, and the history."""
    ents = selectors.entitlements_compute(customer_id)
    access = billing.access_plan(customer_id)
    now = access.now or timezone.now()
    try:
        customer = billing.customer_get(customer_id)
    except DomainError:
        customer = None
    features = {f.key: f for f in selectors.features_all()}
    rows = [
        {
            "feature": features.get(key),
            "key": key,
            "state": state,
            "limit": limit_text(state),
            "remaining": remaining_text(state),
            "plan_value": value_text(state.type, ents.plan_values.get(key, engine.ABSENT)),
        }
        for key, state in sorted(ents.features.items())
    ]
    usage = list(
        Usage.objects.filter(customer_id=customer_id)
        .select_related("feature")
        .order_by("feature__key")
    )
    reservations, reservations_total = _latest(
        Reservation.objects.filter(customer_id=customer_id).select_related("feature"),
        ["created_at", "id"],
    )
    grants_qs = Grant.objects.filter(customer_id=customer_id).select_related("feature")
    grants_total = grants_qs.count()
    grants = [
        {
            "grant": grant,
            "state": grant_state(grant, now),
            "value": value_text(grant.feature.type, grant.value),
        }
        for grant in grants_qs.order_by("-created_at")[:PAGE_ROWS]
    ]
    events, events_total = _latest(
        EntitlementEvent.objects.filter(customer_id=customer_id), ["occurred_at", "id"]
    )
    known = (
        customer is not None or bool(usage) or bool(grants) or bool(events) or bool(reservations)
    )
    return {
        "customer_id": customer_id,
        "customer": customer,
        "known": known,
        "ents": ents,
        "access": access,
        "now": now,
        "rows": rows,
        "usage": usage,
        "reservations": reservations,
        "reservations_total": reservations_total,
        "grants": grants,
        "live_grants": [g for g in grants if g["state"] == "live"],
        "grants_total": grants_total,
        "events": [{"event": e, "detail": detail_text(e.detail)} for e in events],
        "events_total": events_total,
        "page_rows": PAGE_ROWS,
    }


# --- grants from the customer page ------------------------------------------------------


class PlanGrantForm(forms.Form):
    """ "Grant the features of plan X for N days" (and why)."""

    plan = forms.ChoiceField(label="Features of plan")
    days = forms.IntegerField(
        min_value=1,
        max_value=MAX_GRANT_DAYS,
        initial=DEFAULT_GRANT_DAYS,
        label="For (days)",
        widget=forms.NumberInput(attrs={"style": "width:5em"}),
    )
    reason = forms.CharField(
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "why (shown in the history)"}),
    )

    def __init__(self, *args, plans: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.plans = {p.code: p for p in plans}
        choices = [(p.code, f"{p.name} ({p.code})") for p in plans]
        cast(forms.ChoiceField, self.fields["plan"]).choices = choices
        paid = [p for p in plans if not p.is_default]
        if paid:
            self.fields["plan"].initial = paid[0].code


def plan_grant_values(plan, features: list[Feature]) -> list[tuple[Feature, object]]:
    """What granting a plan's features gives: each feature the plan enables, with the
    plan's value (true, a limit, or None for unlimited); false, 0, absent and values the
    engine does not understand are skipped."""
    values = []
    for feature in features:
        value = engine.normalise(feature.type, plan.features.get(feature.key, engine.ABSENT))
        if value is engine.ABSENT or value is False or (type(value) is int and value == 0):
            continue
        values.append((feature, value))
    return values


def plan_grant(
    *, customer_id: str, plan, days: int, reason: str, by: str
) -> tuple[list[Grant], datetime]:
    """Grant each feature the plan enables for `days` from the customer's now (their test
    clock's, if any): one `services.grant_create` per feature, all in one transaction (a
    refusal of one rolls back the others and raises its DomainError)."""
    access = billing.access_plan(customer_id)
    expires_at = (access.now or timezone.now()) + timedelta(days=days)
    reason = reason or f"Features of plan {plan.code} for {days} days"
    values = plan_grant_values(plan, selectors.features_all())
    grants = []
    try:
        with transaction.atomic():
            for feature, value in values:
                grants.append(
                    services.grant_create(
                        customer_id=customer_id,
                        feature_key=feature.key,
                        value=value,
                        expires_at=expires_at,
                        reason=reason,
                        created_by=by,
                    )
                )
    except IntegrityError as exc:
        # Grant.value is NOT NULL in the database, so an unlimited (null) grant is
        # refused there (docs/entitlements-admin.md): say so rather than fail.
        unlimited = [f.key for f, v in values if v is None]
        raise Invalid(
            "grant_not_stored",
            "The database refused a grant"
            + (
                f" (unlimited {', '.join(unlimited)} cannot be stored as a grant)"
                if unlimited
                else ""
            )
            + ".",
        ) from exc
    return grants, expires_at


def grant_revoke(*, customer_id: str, grant_id: str, by: str) -> Grant:
    return services.grant_revoke(
        customer_id=customer_id, grant_id=grant_id, reason="revoked in the admin", by=by
    )
