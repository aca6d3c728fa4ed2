"""What-if simulation: price a coupon, as if it were live, against the carts the engine
priced in the last N days.

Read-only: the carts are streamed from the `cart` events (a server-side cursor, each
distinct customer + cart once, oldest first) and priced by the pure engine with the
coupon alone, so no redemption, counter or cache is touched. Limits are applied as the
simulated redemptions accumulate: max_uses_total over all carts, max_uses_per_user per
customer. Every eligible cart counts as a checkout, so the result is an upper bound.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta

from django.db.models import Subquery
from django.utils import timezone
from rest_framework.exceptions import ValidationError as DRFValidationError

from core.money import format_amount
from coupons.analytics import rollup
from coupons.analytics.models import CouponEvent, EventKind, SimulationRun, SimulationStatus
from coupons.api.fields import CartField
from coupons.engine.pricing import price
from coupons.engine.types import Cart, CodeTerms, Shopper, Usage
from coupons.models import StackingPolicy
from coupons.rules import rule_from_coupon

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 500
CHUNK = 2000
INVALID_CART = "invalid_cart"
LIMIT_TOTAL = "usage_limit_reached"
LIMIT_CUSTOMER = "customer_limit_reached"


def simulation_run(run_id: int) -> None:
    """Run (or, after a redelivery, rerun from the start) one simulation. Any error ends
    the run as failed with the error kept; it never propagates to the worker."""
    run = SimulationRun.objects.select_related("coupon").filter(pk=run_id).first()
    if run is None or run.status == SimulationStatus.DONE:
        return
    _update(
        run,
        status=SimulationStatus.RUNNING,
        started_at=timezone.now(),
        finished_at=None,
        carts_total=0,
        carts_done=0,
        result=None,
        error="",
    )
    try:
        result = _simulate(run)
    except Exception as exc:  # the run shows the error; the worker carries on
        logger.exception("simulation %s failed", run_id)
        _update(
            run,
            status=SimulationStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        return
    # Carts that arrived after the count are simulated too: the total is what was done.
    _update(
        run,
        status=SimulationStatus.DONE,
        result=result,
        carts_total=result["carts"],
        carts_done=result["carts"],
        finished_at=timezone.now(),
    )


def _update(run: SimulationRun, **fields) -> None:
    for name, value in fields.items():
        setattr(run, name, value)
    SimulationRun.objects.filter(pk=run.pk).update(**fields)


def distinct_carts(since):
    """The cart events since `since`, each distinct (customer, cart) once (its first
    occurrence), oldest first: a shopper re-validating one cart is one cart."""
    firsts = (
        CouponEvent.objects.filter(
            kind=EventKind.CART, occurred_at__gte=since, payload__isnull=False
        )
        .order_by("customer_id", "payload", "occurred_at", "id")
        .distinct("customer_id", "payload")
        .values("id")
    )
    return CouponEvent.objects.filter(id__in=Subquery(firsts)).order_by("occurred_at", "id")


def cart_from_payload(customer_id: str, payload: dict) -> tuple[Cart, Shopper]:
    """The engine's cart and shopper from a cart event (the API's cart format)."""
    cart = CartField().to_internal_value(payload.get("cart"))
    customer = payload.get("customer") or {}
    shopper = Shopper(
        id=customer_id or customer.get("id") or None,
        segments=frozenset(customer.get("segments") or ()),
        orders_count=int(customer.get("orders_count") or 0),
    )
    return cart, shopper


def _simulate(run: SimulationRun) -> dict:
    coupon = run.coupon
    cur = coupon.currency
    rule = replace(
        rule_from_coupon(coupon), active=True, auto_apply=False, valid_from=None, valid_to=None
    )
    terms = CodeTerms(code_id=0, code=coupon.code, rule=rule)
    now = timezone.now()
    since = now - timedelta(days=run.days)
    carts = distinct_carts(since)
    _update(run, carts_total=carts.count())

    tz = timezone.get_default_timezone()
    daily: dict = defaultdict(
        lambda: {"carts": 0, "eligible": 0, "redemptions": 0, "discount_minor": 0}
    )
    rejections: Counter = Counter()
    per_customer: Counter = Counter()
    redemptions = eligible = discount = order_value = done = 0
    exhausted_on = None
    rows = carts.values_list("occurred_at", "customer_id", "payload").iterator(chunk_size=CHUNK)
    for occurred_at, customer_id, payload in rows:
        done += 1
        if done % PROGRESS_EVERY == 0:
            _update(run, carts_done=done)
        day = daily[timezone.localtime(occurred_at, tz).date()]
        day["carts"] += 1
        try:
            cart, shopper = cart_from_payload(customer_id, payload)
        except (DRFValidationError, TypeError, ValueError, AttributeError):
            rejections[INVALID_CART] += 1
            continue
        pricing = price(
            [(coupon.code, terms, Usage())], shopper, cart, occurred_at, StackingPolicy.BY_GROUP
        )
        if pricing.rejection is not None:
            rejections[pricing.rejection.reason] += 1
            continue
        eligible += 1
        day["eligible"] += 1
        if rule.max_uses_total is not None and redemptions >= rule.max_uses_total:
            rejections[LIMIT_TOTAL] += 1
            continue
        if (
            rule.max_uses_per_user is not None
            and per_customer[shopper.id] >= rule.max_uses_per_user
        ):
            rejections[LIMIT_CUSTOMER] += 1
            continue
        if rule.max_uses_per_user is not None:
            per_customer[shopper.id] += 1
        cost = pricing.discount + pricing.shipping_discount
        redemptions += 1
        discount += cost
        order_value += cart.subtotal
        day["redemptions"] += 1
        day["discount_minor"] += cost
        if (
            exhausted_on is None
            and coupon.budget_minor is not None
            and discount >= coupon.budget_minor
        ):
            exhausted_on = timezone.localtime(occurred_at, tz).date()

    first = timezone.localtime(since, tz).date()
    series = []
    for offset in range((rollup.today() - first).days + 1):
        day_date = first + timedelta(days=offset)
        d = daily.get(day_date) or {
            "carts": 0,
            "eligible": 0,
            "redemptions": 0,
            "discount_minor": 0,
        }
        series.append(
            {
                "day": day_date.isoformat(),
                "carts": d["carts"],
                "eligible": d["eligible"],
                "redemptions": d["redemptions"],
                "discount": format_amount(d["discount_minor"], cur),
            }
        )
    budget = coupon.budget_minor
    return {
        "currency": cur,
        "days": run.days,
        "since": since.isoformat(),
        "carts": done,
        "carts_eligible": eligible,
        "expected_redemptions": redemptions,
        "limited_by_total": rejections[LIMIT_TOTAL],
        "limited_by_customer": rejections[LIMIT_CUSTOMER],
        "discount": format_amount(discount, cur),
        "order_value": format_amount(order_value, cur),
        "average_discount": format_amount((2 * discount + redemptions) // (2 * redemptions), cur)
        if redemptions
        else None,
        "budget": format_amount(budget, cur) if budget is not None else None,
        "budget_burn": round(discount / budget, 4) if budget else None,
        "budget_exhausted_on": exhausted_on.isoformat() if exhausted_on else None,
        "rejections": dict(rejections.most_common()),
        "daily": series,
    }
