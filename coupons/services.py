"""Coupon writes and the checkout operations: validate, apply, confirm, release, return,
expire. Each public function owns its transaction, except the writes for the sub-domains
at the end (claim tokens, code batches), which run inside their caller's.

Apply is the guarded one (SPEC rule 1): under `select_for_update` on the coupon, code and
customer rows (locks.py order), it re-runs every check on fresh rows, then moves each
counter with a conditional UPDATE whose row count says whether the use was won, and
inserts the redemption rows, which a partial unique index keeps to one per coupon and
order. Giving a use back (release, expiry) flips the redemption's status under lock and
decrements the counters in the same transaction, so a use is returned exactly once.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from core import crockford, metrics
from core.errors import Conflict, NotFound, Unprocessable
from coupons import activation, checkout_events, locks, promotions, selectors
from coupons.abuse import identity
from coupons.abuse import services as abuse_services
from coupons.engine import reasons as r
from coupons.engine.eligibility import check
from coupons.engine.pricing import Evaluation, evaluate
from coupons.engine.types import Cart, CodeTerms, Rejection, Shopper, Usage
from coupons.models import Code, Coupon, Customer, Redemption, RedemptionStatus
from coupons.rules import rule_from_coupon

logger = logging.getLogger(__name__)


class RejectedError(Exception):
    """A business rejection inside a transaction: rolls it back, carries the reason (and
    abuse findings to record once the rollback is done)."""

    def __init__(self, rejection: Rejection, findings: list | None = None):
        super().__init__(rejection.reason)
        self.rejection = rejection
        self.findings = findings or []


class OrderNotFoundError(NotFound):
    def __init__(self, order_id: str):
        super().__init__("order_not_found", f"No coupon was applied to order '{order_id}'.")


@dataclass(frozen=True)
class ApplyResult:
    redemptions: list[Redemption]
    rejection: Rejection | None = None
    replayed: bool = False


class _AutoChanged(Exception):  # control flow, never leaves this module
    """Under lock an auto promotion of the chosen set no longer applies: choose again."""


APPLY_ATTEMPTS = 3


# --- evaluate / validate ----------------------------------------------------------------


def promotions_evaluate(
    *,
    codes: list[str],
    shopper: Shopper,
    cart: Cart,
    preview: CodeTerms | None = None,
    resolved: tuple | None = None,
) -> Evaluation:
    """Read-only: the typed codes plus the auto promotions, best combination (API.md
    promotions/evaluate; validate and apply use this same function).

    `preview` (admin "try it"): a draft promotion evaluated as if it were live and
    auto-applied, next to the real ones. `resolved`: selectors.resolve_codes(codes),
    when the caller already has it (one cache round trip less)."""
    wanted, terms = resolved or selectors.resolve_codes(codes)
    if preview is not None:  # any code of the previewed coupon would shadow the draft
        wanted = [
            c
            for c in wanted
            if terms[c] is None or terms[c].rule.coupon_id != preview.rule.coupon_id
        ]
    cat = promotions.catalog()
    autos = cat.candidates(cart)
    if preview is not None:
        autos = [a for a in autos if a.rule.coupon_id != preview.rule.coupon_id] + [preview]
    now = timezone.now()
    known = [t for t in terms.values() if t is not None]
    live = [t for t in known if _needs_live_state(t, shopper)] + [
        a for a in autos if _needs_live_state(a, shopper) and _may_apply(a, shopper, cart, now)
    ]
    usage: dict[int, Usage] = {}
    if live:
        usage, shopper = selectors.live_state(
            list(dict.fromkeys(t.code_id for t in known + live)), shopper.id, shopper
        )
    entries = [
        (code, terms[code], usage.get(terms[code].code_id, Usage()) if terms[code] else Usage())
        for code in wanted
    ]
    return _evaluate_within_budgets(
        entries, [(a, usage.get(a.code_id, Usage())) for a in autos], shopper, cart, now, cat.policy
    )


BUDGET_PASSES = 3


def _spent(terms: CodeTerms | None, usage: Usage, over: set[int]) -> Usage:
    if terms is None or terms.code_id not in over:
        return usage
    return replace(usage, budget_used=terms.rule.budget or 0)


def _evaluate_within_budgets(
    entries, autos, shopper: Shopper, cart: Cart, now, policy: str
) -> Evaluation:
    """evaluate(), without coupons whose discount here would overrun their remaining
    budget: such a coupon counts as exhausted (usage_limit_reached) and the best
    combination is chosen again. Only carts where a budgeted coupon applies pay a second
    pass; apply's conditional update stays the guard (docs/decisions.md)."""
    for _ in range(BUDGET_PASSES):
        result = evaluate(entries, autos, shopper, cart, now, policy)
        if all(a.terms.rule.budget is None for a in result.pricing.applied):
            return result
        used = {t.code_id: u.budget_used for _, t, u in entries if t is not None}
        used.update((t.code_id, u.budget_used) for t, u in autos)
        over = {
            a.terms.code_id
            for a in result.pricing.applied
            if a.terms.rule.budget is not None
            and used.get(a.terms.code_id, 0) + a.discount + a.shipping_discount
            > a.terms.rule.budget
        }
        if not over:
            return result

        entries = [(text, t, _spent(t, u, over)) for text, t, u in entries]
        autos = [(t, _spent(t, u, over)) for t, u in autos]
    return result


def promotion_preview(
    *, coupon: Coupon, codes: list[str], shopper: Shopper, cart: Cart
) -> Evaluation:
    """Admin "try it": the cart as the engine would price it if `coupon` were live and
    auto-applied (whatever its saved active/auto/window state), next to the promotions
    that are live now. Read-only; nothing is reserved."""
    rule = replace(
        rule_from_coupon(coupon),
        active=True,
        auto_apply=True,
        valid_from=None,
        valid_to=None,
    )
    code = coupon.codes.filter(customer__isnull=True).order_by("-active", "id").first()
    preview = CodeTerms(code_id=code.pk if code else 0, code=coupon.code, rule=rule)
    return promotions_evaluate(codes=codes, shopper=shopper, cart=cart, preview=preview)


def coupons_validate(*, codes: list[str], shopper: Shopper, cart: Cart) -> Evaluation:
    """API.md validate and promotions/evaluate: the evaluation (valid only when every
    typed code is applied), recorded for analytics."""
    result = promotions_evaluate(codes=codes, shopper=shopper, cart=cart)
    checkout_events.priced(result, shopper, cart)
    return result


_LIVE_ONLY = {
    r.USAGE_LIMIT_REACHED,
    r.CUSTOMER_LIMIT_REACHED,
    r.SEGMENT_NOT_ELIGIBLE,
    r.FIRST_PURCHASE_ONLY,
}


def _may_apply(terms: CodeTerms, shopper: Shopper, cart: Cart, now) -> bool:
    """Worth reading live counters for? A promotion failing a condition that no counter or
    stored customer fact can change (window, currency, minimum, items) is not."""
    rejection = check(terms, Usage(), shopper, cart, now)
    return rejection is None or rejection.reason in _LIVE_ONLY


def _needs_live_state(terms: CodeTerms, shopper: Shopper) -> bool:
    """Only limits and customer-based conditions need PostgreSQL on the validate path."""
    rule = terms.rule
    return (
        rule.max_uses_total is not None
        or terms.max_uses is not None
        or rule.max_uses_per_user is not None
        or rule.budget is not None
        or (shopper.id is not None and (bool(rule.eligible_segments) or rule.first_purchase_only))
    )


# --- apply ------------------------------------------------------------------------------


def redemption_apply(
    *,
    codes: list[str],
    shopper: Shopper,
    cart: Cart,
    order_id: str,
    context: dict | None = None,
    idempotency_key: str = "",
) -> ApplyResult:
    """Reserve one use of each coupon the evaluation applies (typed codes and the auto
    promotions it chose), or say why not.

    1. Without locks: an order already holding these codes is a replay; otherwise the cart
       is evaluated exactly as validate evaluates it, so a rejection never waits for a lock.
    2. The customer row is created if missing (outside the locked transaction).
    3. `_reserve` locks the chosen coupons, re-evaluates them on the locked rows and moves
       the counters; the time a hot coupon stays locked is kept to a few statements
       (docs/decisions.md). If an auto promotion stopped applying meanwhile (its limit was
       reached), the choice is made again, at most APPLY_ATTEMPTS times.
    """
    resolved = selectors.resolve_codes(codes)
    wanted = resolved[0]
    held = selectors.holding_for_order(order_id)
    if held:
        return _existing_for_order(held, wanted, shopper.id)
    for attempt in range(APPLY_ATTEMPTS):
        result = promotions_evaluate(
            codes=wanted, shopper=shopper, cart=cart, resolved=resolved if attempt == 0 else None
        )
        rejection = result.first_rejection
        if rejection is not None:
            checkout_events.apply_rejected(rejection, shopper, cart, order_id)
            return ApplyResult(redemptions=[], rejection=rejection)
        if attempt == 0:
            checkout_events.cart_seen(result, shopper, cart)
        if not result.pricing.applied:
            return ApplyResult(redemptions=[])
        customer_pk = selectors.customer_pk_ensure(shopper.id) if shopper.id else None
        try:
            return _reserve(
                result, wanted, shopper, customer_pk, cart, order_id, context or {}, idempotency_key
            )
        except RejectedError as exc:
            _flag_farming(exc.findings, shopper.id)
            checkout_events.apply_rejected(exc.rejection, shopper, cart, order_id)
            return ApplyResult(redemptions=[], rejection=exc.rejection)
        except _AutoChanged:
            if attempt == APPLY_ATTEMPTS - 1:
                raise Conflict(
                    "promotions_changed",
                    "The promotions changed while applying; try again.",
                    retryable=True,
                ) from None
        except IntegrityError:
            # The database's backstops fired (one use of a coupon per order, one coupon set
            # per order): never expected behind the order lock, and never a 500.
            raise Conflict(
                "order_conflict", "This order already holds this coupon.", retryable=True
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


@transaction.atomic(durable=True)
def _reserve(
    prechecked: Evaluation,
    codes: list[str],
    shopper: Shopper,
    customer_pk: int | None,
    cart: Cart,
    order_id: str,
    context: dict,
    idempotency_key: str,
) -> ApplyResult:
    chosen = [a.terms for a in prechecked.pricing.applied]
    typed = set(codes)
    # One apply per order at a time, whoever the shopper is; re-checked after the wait
    # (a concurrent apply for this order may have committed meanwhile).
    if locks.order_lock(order_id):
        return _existing_for_order(selectors.holding_for_order(order_id), codes, shopper.id)
    # The apply events go next, before the coupon locks, so they add nothing to the time
    # a hot coupon stays locked; any rejection below rolls them back with the rest.
    checkout_events.reserving(prechecked.pricing.applied, typed, shopper, cart, order_id)
    # Code -> coupon never changes, so the ids come from the pre-check.
    coupon_ids = [t.rule.coupon_id for t in chosen]
    coupons = locks.coupons_lock(coupon_ids)
    code_rows = locks.codes_lock(t.code_id for t in chosen)
    facts = locks.customer_facts_lock(customer_pk, coupon_ids)
    if customer_pk is not None:
        shopper = Shopper(
            id=shopper.id,
            segments=shopper.segments | facts.segments,
            orders_count=max(shopper.orders_count, facts.orders_count),
        )

    def locked(terms: CodeTerms) -> tuple[CodeTerms | None, Usage]:
        code = code_rows.get(terms.code_id)
        if code is None or code.coupon_id not in coupons:
            return None, Usage()
        coupon = coupons[code.coupon_id]
        fresh = CodeTerms(
            code_id=code.pk,
            code=code.code,
            rule=rule_from_coupon(coupon),
            max_uses=code.max_uses,
            expires_at=code.expires_at,
            bound_customer=code.bound_external_id,  # type: ignore[attr-defined]
            active=code.active,
        )
        return fresh, Usage(
            coupon_uses=coupon.uses,
            code_uses=code.uses,
            customer_uses=facts.customer_uses.get(coupon.pk, 0),
            budget_used=coupon.budget_used_minor,
        )

    by_code = {t.code: t for t in chosen}
    entries = [(text, *locked(by_code[text])) for text in codes]
    autos = [locked(t) for t in chosen if t.code not in typed]
    now = timezone.now()
    result = _evaluate_within_budgets(
        entries, [(t, u) for t, u in autos if t is not None], shopper, cart, now, prechecked.policy
    )
    if result.first_rejection is not None:
        raise RejectedError(result.first_rejection)
    if [a.terms.code for a in result.pricing.applied] != [t.code for t in chosen]:
        raise _AutoChanged

    digests = identity.digests(context)
    watched, findings = _identity_checks(
        result.pricing.applied, typed, coupons, digests, customer_pk, facts
    )
    stored_context = identity.stored_context(context, digests)
    expires_at = now + timedelta(seconds=settings.COUPON_RESERVATION_TTL)
    apply_id = uuid.uuid4()
    created = []
    for applied in result.pricing.applied:
        terms = applied.terms
        redemption = Redemption(
            id=uuid.uuid4(),
            coupon_id=terms.rule.coupon_id,
            code=code_rows[terms.code_id],
            customer_id=customer_pk,
            order_id=order_id,
            apply_id=apply_id,
            status=RedemptionStatus.RESERVED,
            currency=cart.currency,
            discount_minor=applied.discount,
            shipping_discount_minor=applied.shipping_discount,
            order_value_minor=cart.subtotal,
            lines=[
                {"sku": line.sku, "discount_minor": d}
                for line, d in zip(cart.lines, applied.line_discounts, strict=True)
            ],
            auto=terms.code not in typed,
            idempotency_key=idempotency_key,
            context=stored_context,
            expires_at=expires_at,
            created_at=now,
        )
        if not locks.use_take_and_record(redemption):
            if redemption.auto:
                raise _AutoChanged
            raise RejectedError(
                Rejection(r.USAGE_LIMIT_REACHED, r.MESSAGES[r.USAGE_LIMIT_REACHED], terms.code)
            )
        created.append(redemption)
    if watched:
        abuse_services.identity_record(
            redemptions=[x for x in created if x.coupon_id in watched], digests=digests
        )
    transaction.on_commit(
        lambda: metrics.redemption_transitions.labels("reserved").inc(len(created))
    )
    transaction.on_commit(lambda: _after_reserve(created, coupons, findings, shopper.id))
    return ApplyResult(redemptions=created)


def _identity_checks(
    applied,
    typed: set[str],
    coupons: dict[int, Coupon],
    digests: dict[str, str],
    customer_pk: int | None,
    facts: locks.CustomerFacts,
) -> tuple[set[int], list]:
    """Multi-account farming (seed 004): for the applied coupons a shopper should get once
    (first purchase, one use per customer) or that count uses by identity, look for live
    redemptions by OTHER customers with the same device, IP, email or card. The coupon row
    lock held by the caller serialises these checks with every other apply of the coupon.

    Returns the coupons whose identities to keep and the findings to flag after commit;
    raises RejectedError for a typed code the coupon's settings refuse. Automatic
    promotions are flagged, never refused (a shopper typed nothing to be refused)."""
    watched: set[int] = set()
    findings: list = []
    if not digests:
        return watched, findings
    for a in applied:
        coupon = coupons[a.terms.rule.coupon_id]
        once = coupon.first_purchase_only or coupon.max_uses_per_user == 1
        if not (once or coupon.limit_by_identity):
            continue
        watched.add(coupon.pk)
        shared = abuse_services.identity_shared(
            coupon_id=coupon.pk, digests=digests, customer_pk=customer_pk
        )
        if not shared:
            continue
        found = (coupon.pk, shared) if once else None
        refuse = None
        if a.terms.code in typed:
            if (
                coupon.limit_by_identity
                and coupon.max_uses_per_user is not None
                and facts.customer_uses.get(coupon.pk, 0) + len({row[3] for row in shared})
                >= coupon.max_uses_per_user
            ):
                refuse = r.CUSTOMER_LIMIT_REACHED
            elif once and coupon.farming_action == "block":
                refuse = r.MULTI_ACCOUNT_SUSPECTED
        if refuse is not None:
            raise RejectedError(
                Rejection(refuse, r.MESSAGES[refuse], a.terms.code),
                findings=[found] if found else [],
            )
        if found:
            findings.append(found)
    return watched, findings


def _flag_farming(findings: list, customer_id: str | None) -> None:
    for coupon_id, shared in findings:
        abuse_services.farming_flag(coupon_id=coupon_id, customer_id=customer_id, shared=shared)


def _after_reserve(
    created: list[Redemption], coupons: dict[int, Coupon], findings: list, customer_id: str | None
) -> None:
    """After commit, outside the locks: flag farming, count public codes' unique
    customers (leak detection)."""
    _flag_farming(findings, customer_id)
    if customer_id is None:
        return
    for x in created:
        code = x.code
        if code.customer_id is None and code.batch_id is None:  # the public code
            abuse_services.leak_note(
                coupon_id=x.coupon_id,
                code_id=code.pk,
                code=code.code,
                customer_id=customer_id,
                threshold=coupons[x.coupon_id].leak_threshold,
            )


def _existing_for_order(
    held: list[Redemption], codes: list[str], customer_id: str | None
) -> ApplyResult:
    """The order already holds coupons: the same typed codes again is a replay (the auto
    promotions it holds came with them), anything else is a conflict (release first)."""
    held_codes = {h.code.code for h in held if not h.auto}
    same_customer = all(
        (h.customer.external_id if h.customer is not None else None) == customer_id for h in held
    )
    if held_codes == set(codes) and same_customer:
        return ApplyResult(redemptions=held, replayed=True)
    names = sorted(h.code.code for h in held)
    raise Conflict(
        "order_has_coupons",
        f"Order already holds {', '.join(names)}; release it before "
        "applying a different set of codes.",
    )


# --- confirm / release / return / expire ------------------------------------------------


def order_confirm(*, order_id: str) -> list[Redemption]:
    """Payment captured: reserved -> confirmed (idempotent).

    The order lock keeps a concurrent apply of the same order out; the events and the
    "first purchase" counts come from the rows the conditional UPDATE actually moved
    (RETURNING), never from rows read before it."""
    with transaction.atomic(durable=True):
        locks.order_lock(order_id)
        rows = list(
            Redemption.objects.filter(order_id=order_id).values_list("customer_id", "status")
        )
        if not rows:
            raise OrderNotFoundError(order_id)
        # Only the customers whose reservations this confirm moves: a released row of an
        # earlier attempt on the same order id belongs to nobody's purchase.
        customers = locks.customers_lock(
            c for c, status in rows if c is not None and status == RedemptionStatus.RESERVED
        )
        moved = locks.redemptions_confirm(order_id, timezone.now())
        if moved:
            confirmed = list(
                Redemption.objects.select_related("code", "customer").filter(pk__in=moved)
            )
            count = len(confirmed)
            transaction.on_commit(
                lambda: metrics.redemption_transitions.labels("confirmed").inc(count)
            )
            # A first confirmed order ends "first purchase" eligibility.
            buyers = {x.customer_id for x in confirmed if x.customer_id is not None}
            Customer.objects.filter(pk__in=buyers).update(orders_count=F("orders_count") + 1)
            checkout_events.moved(
                "confirm",
                confirmed,
                new_customers=frozenset(
                    pk for pk in buyers if pk in customers and customers[pk].orders_count == 0
                ),
            )
        result = selectors.redemptions_for_order(order_id)
    if not any(x.status == RedemptionStatus.CONFIRMED for x in result):
        raise Conflict(
            "reservation_expired",
            "The order's reservation was released or expired; apply the code again.",
        )
    return result


def order_release(*, order_id: str) -> list[Redemption]:
    """Payment failed or order cancelled: reserved -> released, uses given back."""
    with transaction.atomic(durable=True):
        locks.order_lock(order_id)  # an apply of this order finishes first, or waits
        rows = selectors.redemptions_for_order(order_id)
        if not rows:
            raise OrderNotFoundError(order_id)
        _give_back(
            [x.pk for x in rows if x.status == RedemptionStatus.RESERVED], RedemptionStatus.RELEASED
        )
        result = selectors.redemptions_for_order(order_id)
    if any(x.status == RedemptionStatus.CONFIRMED for x in result):
        raise Conflict(
            "order_confirmed", "The order is confirmed; record returned goods with /return instead."
        )
    return result


def order_return(*, order_id: str, amount_minor: int | None = None) -> list[Redemption]:
    """Record returned merchandise against a confirmed order (abuse analytics)."""
    with transaction.atomic(durable=True):
        rows = locks.redemptions_lock(
            Redemption.objects.filter(order_id=order_id).values_list("pk", flat=True)
        )
        if not rows:
            raise OrderNotFoundError(order_id)
        confirmed = [x for x in rows if x.status == RedemptionStatus.CONFIRMED]
        if not confirmed:
            raise Conflict("order_not_confirmed", "Only a confirmed order can be returned.")
        now = timezone.now()
        returned = []
        for x in confirmed:
            if x.returned_at is None:
                value = (
                    x.order_value_minor
                    if amount_minor is None
                    else min(amount_minor, x.order_value_minor)
                )
                Redemption.objects.filter(pk=x.pk).update(returned_at=now, returned_minor=value)
                returned.append((x, value))
        checkout_events.moved(
            "return", [x for x, _ in returned], returned={x.pk: value for x, value in returned}
        )
    if returned:
        abuse_services.return_rate_check(coupon_ids=[x.coupon_id for x, _ in returned])
    return selectors.redemptions_for_order(order_id)


def _give_back(ids: list, new_status: str) -> int:
    """reserved -> released/expired for these redemptions, returning each use once."""
    if not ids:
        return 0
    with transaction.atomic():
        keys = list(
            Redemption.objects.filter(pk__in=ids, status=RedemptionStatus.RESERVED).values_list(
                "coupon_id", "code_id"
            )
        )
        locks.coupons_lock(c for c, _ in keys)
        locks.codes_lock(k for _, k in keys)
        rows = [x for x in locks.redemptions_lock(ids) if x.status == RedemptionStatus.RESERVED]
        if not rows:
            return 0
        Redemption.objects.filter(pk__in=[x.pk for x in rows]).update(
            status=new_status, released_at=timezone.now()
        )
        checkout_events.moved(
            "release" if new_status == RedemptionStatus.RELEASED else "expire", rows
        )
        spent: Counter = Counter()
        for x in rows:
            spent[x.coupon_id] += x.discount_minor + x.shipping_discount_minor
        for coupon_id, n in Counter(x.coupon_id for x in rows).items():
            Coupon.objects.filter(pk=coupon_id).update(
                uses=F("uses") - n, budget_used_minor=F("budget_used_minor") - spent[coupon_id]
            )
        for code_id, n in Counter(x.code_id for x in rows).items():
            Code.objects.filter(pk=code_id).update(uses=F("uses") - n)
        count = len(rows)
        transaction.on_commit(lambda: metrics.redemption_transitions.labels(new_status).inc(count))
        return count


def redemptions_expire_stale(*, batch_size: int = 200) -> int:
    """Give back the uses of reservations past their hold (beat job). Safe to re-run."""
    total = 0
    while True:
        ids = list(
            Redemption.objects.filter(
                status=RedemptionStatus.RESERVED, expires_at__lt=timezone.now()
            )
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return total
        total += _give_back(ids, RedemptionStatus.EXPIRED)


# --- coupon definitions (admin API and Django admin) ------------------------------------


def _discount_errors(coupon: Coupon) -> dict[str, list[str]]:
    """The type-specific part of coupon_check: value, tiers, BOGO terms."""
    errors: dict[str, list[str]] = {}
    t = coupon.type
    if t == "percentage" and not coupon.percent_bp:
        errors["value"] = ["A percentage coupon needs a value between 0 and 100."]
    if coupon.percent_bp is not None and not 0 < coupon.percent_bp <= 10_000:
        errors["value"] = ["A percentage must be more than 0 and at most 100."]
    if t == "fixed" and not coupon.amount_minor:
        errors["value"] = ["A fixed coupon needs a positive amount."]
    if t == "tiered":
        thresholds = [tier.get("threshold_minor") for tier in coupon.tiers or []]
        if not thresholds:
            errors["tiers"] = ["A tiered coupon needs at least one tier."]
        elif len(set(thresholds)) != len(thresholds):
            errors["tiers"] = ["Tier thresholds must be different."]
    if t == "bogo":
        if not coupon.bogo_buy or not coupon.bogo_get:
            errors["bogo"] = ["A BOGO coupon needs buy >= 1 and get >= 1."]
        if coupon.bogo_percent_bp is not None and not 0 < coupon.bogo_percent_bp <= 10_000:
            errors["bogo"] = ["percent_off must be more than 0 and at most 100."]
    return errors


def coupon_check(coupon: Coupon) -> None:
    """Business validation of a coupon definition; raises ValidationError by field."""
    errors = _discount_errors(coupon)
    for name in ("amount_minor", "cap_minor", "min_cart_minor"):
        value = getattr(coupon, name)
        if value is not None and value < 0:
            errors[name] = ["Must not be negative."]
    if coupon.valid_from and coupon.valid_to and coupon.valid_from >= coupon.valid_to:
        errors["valid_to"] = ["valid_to must be after valid_from."]
    if coupon.budget_minor is not None and coupon.budget_minor < (coupon.budget_used_minor or 0):
        errors["budget"] = ["The coupon's live redemptions already hold more than this."]
    if coupon.budget_minor is not None and coupon.budget_minor <= 0:
        errors["budget"] = ["A budget must be positive (leave it empty for none)."]
    if coupon.max_uses_total is not None and coupon.max_uses_total < coupon.uses:
        errors["max_uses_total"] = [
            f"The coupon has already been used {coupon.uses} times; deactivate it instead."
        ]
    if errors:
        raise ValidationError(errors)


def _forget_on_commit(coupon: Coupon, codes: Sequence[str] = ()) -> None:
    coupon_id = coupon.pk
    codes = list(codes)
    transaction.on_commit(lambda: selectors.cache_forget(coupon_ids=[coupon_id], codes=codes))


@transaction.atomic
def coupon_create(
    *, fields: dict, public_code: str | None = None, with_public_code: bool = True
) -> Coupon:
    """Create a coupon and, unless told otherwise, its public code (same string).

    `with_public_code=False` creates the coupon alone: a flash-sale campaign's discount is
    reachable only through the per-customer claim tokens, never by a typed public code.
    """
    coupon = Coupon(**fields)
    coupon.code = selectors.normalize_code(coupon.code)
    coupon_check(coupon)
    public = (public_code or coupon.code) if with_public_code else None
    if Coupon.objects.filter(code=coupon.code).exists() or (
        public is not None and Code.objects.filter(code=public).exists()
    ):
        raise Conflict("coupon_exists", f"A coupon or code '{coupon.code}' already exists.")
    try:
        with transaction.atomic():
            coupon.save()
            if public is not None:
                Code.objects.create(coupon=coupon, code=public)
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "23505":  # not unique: a check
            raise  # constraint (bad input, a 400 for the caller), never "exists"
        raise Conflict(
            "coupon_exists", f"A coupon or code '{coupon.code}' already exists."
        ) from None
    _forget_on_commit(coupon, [public] if public is not None else [])
    return coupon


@transaction.atomic
def coupon_update(*, coupon_id: int, fields: dict, who: str = "") -> Coupon:
    """Change a coupon's definition under lock; counters are never set from outside."""
    coupon = locks.coupons_lock([coupon_id])[coupon_id]
    if fields.get("active") and not coupon.active and coupon.disabled_reason:
        fields = {**fields, "disabled_reason": "", "disabled_at": None}
        abuse_services.reenabled(coupon_ids=[coupon_id], who=who)
    for name, value in fields.items():
        setattr(coupon, name, value)
    coupon_check(coupon)
    coupon.version += 1  # the row is locked; an F() would reach the history table as is
    coupon.save()
    _forget_on_commit(coupon)
    return coupon


def coupons_set_active(
    *,
    coupon_ids: list[int],
    active: bool,
    reason: str = "",
    disabled_reason: str = "",
    who: str = "",
) -> int:
    """Activate or stop coupons (admin action, the "stop a leaked code" button). Saved row
    by row under lock so each change lands in the coupon's history with `reason`
    (coupons/activation.py, which the leak detector calls directly to disable).
    `disabled_reason` (automatic disables) is shown on the coupon until it is re-enabled;
    turning such a coupon back on also tells the abuse module (alerts reviewed, leak
    counts reset)."""
    with transaction.atomic():
        changed, reenabled = activation.coupons_active_write(
            coupon_ids=coupon_ids, active=active, reason=reason, disabled_reason=disabled_reason
        )
        if reenabled:
            abuse_services.reenabled(coupon_ids=reenabled, who=who)
        transaction.on_commit(lambda: selectors.cache_forget(coupon_ids=coupon_ids))
    return changed


def _forget_codes_on_commit(codes: list[str]) -> None:
    codes = list(codes)
    transaction.on_commit(lambda: selectors.cache_forget(codes=codes))


CODE_FIELDS = frozenset({"coupon", "code", "max_uses", "expires_at", "customer", "active"})
CUSTOMER_FIELDS = frozenset({"external_id", "segments"})


def _refuse_unknown(fields: dict, allowed: frozenset[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:  # counters above all: they move only through the checkout services
        raise ValidationError(
            {name: ["This field cannot be set here."] for name in sorted(unknown)}
        )


@transaction.atomic
def code_create(*, fields: dict) -> Code:
    """A code added by hand (admin): normalised, unique, pointing at an existing coupon."""
    fields = {k: v for k, v in fields.items() if k in CODE_FIELDS}
    code = Code(**fields)
    code.code = selectors.normalize_code(code.code)
    if Code.objects.filter(code=code.code).exists():
        raise ValidationError({"code": [f"A code '{code.code}' already exists."]})
    try:
        with transaction.atomic():
            code.save(force_insert=True)
    except IntegrityError:
        raise ValidationError({"code": [f"A code '{code.code}' already exists."]}) from None
    _forget_codes_on_commit([code.code])
    return code


@transaction.atomic
def code_update(*, code_id: int, fields: dict) -> Code:
    """Edit a code's limits, expiry, bound customer or state under its lock, writing only
    those columns: an edit never writes back a `uses` read before a concurrent apply."""
    _refuse_unknown(fields, CODE_FIELDS - {"code", "coupon"})
    code = locks.codes_lock([code_id]).get(code_id)
    if code is None:
        raise ValidationError("The code no longer exists.")
    for name, value in fields.items():
        setattr(code, name, value)
    if code.max_uses is not None and code.max_uses < code.uses:
        raise ValidationError(
            {
                "max_uses": [
                    f"The code has already been used {code.uses} times; deactivate it instead."
                ]
            }
        )
    if fields:
        code.save(update_fields=list(fields))
    _forget_codes_on_commit([code.code])
    return Code.objects.get(pk=code_id)


def codes_set_active(*, code_ids: list[int], active: bool) -> int:
    """Activate or stop codes (admin actions): one UPDATE of the `active` column only."""
    with transaction.atomic():
        changed = list(
            Code.objects.filter(pk__in=code_ids)
            .exclude(active=active)
            .values_list("code", flat=True)
        )
        Code.objects.filter(pk__in=code_ids).update(active=active)
        # Batches: a selection may hold many codes.
        for start in range(0, len(changed), 1000):
            _forget_codes_on_commit(changed[start : start + 1000])
    return len(changed)


@transaction.atomic
def customer_create(*, fields: dict) -> Customer:
    fields = {k: v for k, v in fields.items() if k in CUSTOMER_FIELDS}
    if Customer.objects.filter(external_id=fields.get("external_id")).exists():
        raise ValidationError({"external_id": ["This customer already exists."]})
    return Customer.objects.create(**fields)


@transaction.atomic
def customer_update(*, customer_id: int, fields: dict) -> Customer:
    """Edit a customer's segments under its lock, writing that column only: a concurrent
    confirm's `orders_count` is never overwritten (first-purchase eligibility)."""
    _refuse_unknown(fields, CUSTOMER_FIELDS - {"external_id"})
    customer = locks.customers_lock([customer_id]).get(customer_id)
    if customer is None:
        raise ValidationError("The customer no longer exists.")
    for name, value in fields.items():
        setattr(customer, name, value)
    if fields:
        customer.save(update_fields=list(fields))
    # Cached live state (segments) is read per request from PostgreSQL; bound codes are
    # cached with the external id, which never changes.
    return customer


# --- writes for the sub-domains ---------------------------------------------------------
# The statements the flash-sale claims and the code batches run on coupon tables, moved
# here unchanged (same SQL, same round trips). None opens a transaction: each runs in the
# caller's, whose boundaries (durable claim, one transaction per 50,000-code chunk) and
# lock order (coupons/locks.py) stay the caller's.

_CLAIM_CODE_INSERT_SQL = """
INSERT INTO coupons_code (coupon_id, code, max_uses, uses, expires_at, customer_id, active,
                          created_at)
VALUES (%s, %s, 1, 0, %s, %s, true, %s)
RETURNING id
"""


def code_create_for_claim(*, coupon_id: int, code: str, expires_at, customer_pk: int, now) -> int:
    """coupons.campaigns: a claim's token, a single-use code bound to the customer and
    expiring with the claim's hold; its id. A new row nobody else can see yet (it locks
    nothing that matters). Plain function: runs in the claim's durable transaction, no
    savepoint (the claim path is hot)."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_CODE_INSERT_SQL, [coupon_id, code, expires_at, customer_pk, now])
        return cursor.fetchone()[0]


_CODES_DEACTIVATE_SQL = "UPDATE coupons_code SET active = false WHERE id = ANY(%s) RETURNING code"


def codes_deactivate(*, code_ids: list[int]) -> list[str]:
    """coupons.campaigns (claims expiry): stop these codes, already locked by the caller
    (locks.codes_lock_bare); the texts of the codes it stopped. Their cached terms are
    dropped after the caller's commit. Runs in the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_CODES_DEACTIVATE_SQL, [code_ids])
        codes = [row[0] for row in cursor.fetchall()]
    if codes:  # cached code terms would still say "active"
        _forget_codes_on_commit(codes)
    return codes


_BATCH_CUSTOMERS_ENSURE_SQL = """
INSERT INTO coupons_customer (external_id, segments, orders_count, created_at)
SELECT DISTINCT t.external_id, '{}'::varchar[], 0, now()
  FROM codebatches_codebatch b CROSS JOIN LATERAL unnest(b.customer_ids) AS t(external_id)
 WHERE b.id = %s
ON CONFLICT (external_id) DO NOTHING
"""


def customers_ensure_for_batch(*, batch_id) -> None:
    """coupons.codebatches: every customer id of a targeted batch as a Customer row,
    set-wise in one statement (the ids are read in PostgreSQL, never loaded here;
    existing customers untouched). Runs in the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_BATCH_CUSTOMERS_ENSURE_SQL, [batch_id])


_STAGING_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CODES_FROM_STAGING_SQL = """
INSERT INTO coupons_code (coupon_id, code, max_uses, uses, expires_at, customer_id, active,
                          created_at, batch_id)
SELECT %s, s.code, %s, 0, %s, s.customer_id, true, now(), %s
  FROM {staging} s
ON CONFLICT (code) DO NOTHING
"""


def codes_insert_from_staging(
    *, staging_table: str, coupon_id: int, max_uses: int | None, expires_at, batch_id
) -> int:
    """coupons.codebatches: move a chunk of staged codes into coupons_code in ONE
    set-based statement; a code that clashes with any existing code is skipped. Returns
    how many went in.

    `staging_table`: a table the caller created in this session (a temporary one) with
    columns `code` and `customer_id`; only a plain lower-case identifier is accepted, as
    it is written into the statement. Runs in the caller's (chunk's) transaction."""
    if not _STAGING_TABLE.fullmatch(staging_table):
        raise ValueError(f"Not a staging table name: {staging_table!r}")
    sql = _CODES_FROM_STAGING_SQL.format(staging=staging_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [coupon_id, max_uses, expires_at, batch_id])
        return cursor.rowcount


# --- coupons at billing (API.md "Promotions at billing") --------------------------------
# A subscription's coupon is one redemption, taken by the same apply as a checkout on an
# order of its own (chosen by billing); billing confirms it once the subscription holds
# and releases it when the subscribe fails. Each invoice's discount is priced by
# selectors.subscription_discount.

BILLING_CATEGORY = "subscription"


@dataclass(frozen=True)
class SubscriptionCoupon:
    coupon_id: int
    code: str
    duration: str  # once | repeating | forever
    duration_invoices: int | None

    @property
    def invoices(self) -> int | None:
        """How many invoices with something to charge it discounts; None: every one."""
        if self.duration == "forever":
            return None
        if self.duration == "repeating":
            return self.duration_invoices or 1
        return 1


def subscription_coupon_redeem(
    *, code: str, customer_id: str, order_id: str, sku: str, amount_minor: int, currency: str
) -> SubscriptionCoupon:
    """Reserve one use of the coupon behind `code` for a subscription (`order_id`), or
    raise Unprocessable with the coupon's reason code (API.md's order of checks)."""
    result = redemption_apply(
        codes=[code],
        shopper=Shopper(id=customer_id),
        cart=selectors.billing_cart(sku, amount_minor, currency),
        order_id=order_id,
    )
    if result.rejection is not None:
        raise Unprocessable(result.rejection.reason, result.rejection.message)
    if not result.redemptions:  # valid, but takes nothing off this price
        raise Unprocessable(r.NO_ELIGIBLE_ITEMS, r.MESSAGES[r.NO_ELIGIBLE_ITEMS])
    redemption = result.redemptions[0]
    coupon = Coupon.objects.only("duration", "duration_invoices").get(pk=redemption.coupon_id)
    return SubscriptionCoupon(
        coupon_id=redemption.coupon_id,
        code=redemption.code.code,
        duration=coupon.duration,
        duration_invoices=coupon.duration_invoices,
    )


def subscription_coupon_confirm(*, order_id: str) -> None:
    """The subscription holds: its reserved use becomes confirmed (idempotent)."""
    order_confirm(order_id=order_id)


def subscription_coupon_release(*, order_id: str) -> None:
    """The subscribe failed: give its reserved use back (idempotent; a confirmed use
    stays spent)."""
    try:
        order_release(order_id=order_id)
    except (OrderNotFoundError, Conflict):
        logger.info("subscription coupon %s: nothing reserved to release", order_id)


# --- referrals' welcome offer -------------------------------------------------------------


@transaction.atomic
def welcome_code_issue(
    *, template_code: str, percent_bp: int, invoices: int, customer_id: str, now
) -> str:
    """referrals: a single-use code bound to the customer, on the program's welcome coupon
    (created on first use, with no public code: only the bound codes reach it). Returns
    the code. Usable at checkout and at billing (`coupon_code` of a subscribe)."""
    template = selectors.normalize_code(template_code)
    coupon = Coupon.objects.filter(code=template).first()
    if coupon is None:
        try:
            with transaction.atomic():
                coupon = coupon_create(
                    fields=dict(
                        code=template,
                        type="percentage",
                        percent_bp=percent_bp,
                        duration="repeating",
                        duration_invoices=invoices,
                        description="Referral welcome offer",
                    ),
                    with_public_code=False,
                )
        except Conflict:  # created meanwhile by a concurrent attribution
            coupon = Coupon.objects.get(code=template)
    code = f"WELCOME-{crockford.random_symbols(8)}"
    code_create_for_claim(
        coupon_id=coupon.pk,
        code=code,
        expires_at=None,
        customer_pk=selectors.customer_pk_ensure(customer_id),
        now=now,
    )
    return code


def identity_digests(context: dict | None) -> dict[str, str]:
    """Keyed hashes of a context's identities (email, device, payment fingerprint, IP),
    normalised as the abuse checks do: other apps compare identities without storing
    them (referrals' self-referral checks). A pure function, here beside apply's use."""
    return identity.digests(context)
