"""Evaluate a cart: the codes the shopper typed plus the auto-apply promotions.

One function, `evaluate`, serves promotions/evaluate, coupons/validate and coupons/apply,
so the three can never disagree:

1. every typed code and every auto promotion is checked (eligibility.py, API.md's order);
2. the eligible ones compete: the valid combination under the site's stacking policy
   with the largest total discount wins (combine.py), so between a typed code and an
   automatic promotion the customer gets the better deal (seed 004, option c);
3. typed codes left out are reported with the conflict that kept them out and what won;
   auto promotions left out are reported the same way (`passed_over`), and the ones that
   failed a condition are kept for the admin's preview (`ineligible`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.money import display
from coupons.engine import reasons as r
from coupons.engine.combine import (
    apply_in_order,
    best_combination,
    best_order,
    conflict,
    rank_key,
    stack_group,
    standalone,
    total_of,
)
from coupons.engine.eligibility import check
from coupons.engine.types import Cart, CodeTerms, Pricing, Rejection, Shopper, Usage

__all__ = [
    "Evaluation",
    "Skipped",
    "apply_in_order",
    "best_order",
    "evaluate",
    "price",
    "stack_group",
]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A candidate that is not applied, and why."""

    terms: CodeTerms | None
    rejection: Rejection
    entered: bool


@dataclass(frozen=True)
class Evaluation:
    pricing: Pricing  # what is applied, in application order, with totals and lines
    policy: str
    rejected: tuple[Skipped, ...] = ()  # typed codes not applied (request order)
    passed_over: tuple[Skipped, ...] = ()  # eligible auto promotions that lost
    ineligible: tuple[Skipped, ...] = ()  # auto promotions failing a condition (preview)
    exact: bool = True
    typed: frozenset[str] = frozenset()  # the stored codes of the typed candidates

    @property
    def first_rejection(self) -> Rejection | None:
        """validate/apply are all-or-nothing: the first typed code that cannot be applied.
        A failed condition outranks a stacking conflict (it is true whatever else is in
        the cart); within each kind, request order."""
        failed = [s for s in self.rejected if s.rejection.reason not in _STACKING]
        chosen = failed or list(self.rejected)
        return chosen[0].rejection if chosen else None


_STACKING = {r.NOT_STACKABLE, r.STACK_GROUP_CONFLICT}
MAX_PASSED_OVER = 10  # promotions explained as "not applied" (a big catalog has dozens)


def _name(terms: CodeTerms) -> str:
    return terms.code


def _nothing(terms: CodeTerms) -> Rejection:
    return Rejection(
        r.NO_ELIGIBLE_ITEMS, "Nothing left for it to discount on this cart", terms.code
    )


def _lost(
    terms: CodeTerms,
    winners: Sequence[CodeTerms],
    pricing: Pricing,
    cart: Cart,
    policy: str,
    alone: int,
) -> Rejection:
    """Why a compatible-by-itself candidate is not in the winning combination."""
    blockers = [w for w in winners if conflict(terms, w, policy) is not None]
    reason = (conflict(terms, blockers[0], policy) if blockers else None) or r.NOT_STACKABLE
    names = ", ".join(_name(w) for w in (blockers or winners))
    if policy == "none":
        why = "only one coupon or promotion can be used per order"
    elif (
        reason == r.STACK_GROUP_CONFLICT
        and blockers
        and blockers[0].rule.coupon_id != terms.rule.coupon_id
    ):
        why = f"only one coupon of the '{stack_group(terms)}' kind can be used per order"
    else:
        why = "they cannot be combined"
    message = (
        f"A better combination was chosen: {names} saves "
        f"{display(total_of(pricing), cart.currency)} in total, against "
        f"{display(alone, cart.currency)} with {_name(terms)}; {why}."
    )
    return Rejection(reason, message, terms.code)


def _check_typed(
    entered: Sequence[tuple[str, CodeTerms | None, Usage]],
    shopper: Shopper,
    cart: Cart,
    now: datetime,
) -> tuple[list[Skipped], list[CodeTerms], set[int]]:
    """The typed codes, in request order -> (rejected, candidates, their coupon ids)."""
    rejected: list[Skipped] = []
    cands: list[CodeTerms] = []
    typed_coupons: set[int] = set()
    for text, terms, usage in entered:
        rejection = check(terms, usage, shopper, cart, now, entered=text)
        if terms is not None and terms.rule.coupon_id in typed_coupons and rejection is None:
            # Two codes of one coupon: a coupon applies at most once per order.
            rejection = Rejection(
                r.STACK_GROUP_CONFLICT, r.MESSAGES[r.STACK_GROUP_CONFLICT], terms.code
            )
        if terms is not None:
            typed_coupons.add(terms.rule.coupon_id)
        if rejection is not None:
            rejected.append(Skipped(terms, rejection, entered=True))
        elif terms is not None:  # check() rejects unknown codes
            cands.append(terms)
    return rejected, cands, typed_coupons


def _check_autos(
    autos: Sequence[tuple[CodeTerms, Usage]],
    typed_coupons: set[int],
    alone: dict[int, int],
    shopper: Shopper,
    cart: Cart,
    now: datetime,
) -> tuple[list[Skipped], list[CodeTerms]]:
    """The auto promotions not typed as a code -> (ineligible, candidates); records each
    eligible one's standalone value in `alone`."""
    ineligible: list[Skipped] = []
    auto_cands: list[CodeTerms] = []
    for terms, usage in autos:
        if terms.rule.coupon_id in typed_coupons:
            continue  # typed as a code: it competes as that code
        rejection = check(terms, usage, shopper, cart, now)
        if rejection is None:
            alone[id(terms)] = standalone(terms, cart)
        if rejection is None and alone[id(terms)] == 0:
            # Worth nothing even alone (e.g. free shipping on a cart without shipping):
            # it could only win ties against coupons that do something.
            rejection = _nothing(terms)
        if rejection is None:
            auto_cands.append(terms)
        else:
            ineligible.append(Skipped(terms, rejection, entered=False))
    return ineligible, auto_cands


def evaluate(
    entered: Sequence[tuple[str, CodeTerms | None, Usage]],
    autos: Sequence[tuple[CodeTerms, Usage]],
    shopper: Shopper,
    cart: Cart,
    now: datetime,
    policy: str,
) -> Evaluation:
    """entered: (code as typed, its terms or None if unknown, live usage), request order.
    autos: the auto-apply promotions that may concern this cart, with live usage."""
    rejected, cands, typed_coupons = _check_typed(entered, shopper, cart, now)
    alone = {id(t): standalone(t, cart) for t in cands}
    ineligible, auto_cands = _check_autos(autos, typed_coupons, alone, shopper, cart, now)

    typed_ids = {id(t) for t in cands}
    pricing, exact = best_combination(cands + auto_cands, cart, policy, alone)
    # An auto promotion that adds nothing after the others is dropped, so it does not
    # take a use; a typed code that adds nothing is still applied (the shopper asked for
    # it). Whatever is compatible with the winners left is then added after them: it adds
    # nothing to a best combination (typed codes are kept, promotions are not).
    winners = [
        a.terms
        for a in pricing.applied
        if id(a.terms) in typed_ids or a.discount or a.shipping_discount
    ]
    zero = {id(a.terms) for a in pricing.applied} - {id(t) for t in winners}
    for terms in cands + sorted(auto_cands, key=rank_key):
        if id(terms) in {id(w) for w in winners}:
            continue
        if all(conflict(terms, w, policy) is None for w in winners):
            if id(terms) in typed_ids:
                winners.append(terms)
            else:
                zero.add(id(terms))
    if [id(t) for t in winners] != [id(a.terms) for a in pricing.applied]:
        pricing = apply_in_order(winners, cart)
    won = {id(t) for t in winners}
    passed_over: list[Skipped] = []
    # Typed codes in request order; promotions worth most on their own first (the
    # alternatives a shopper would ask about), at most MAX_PASSED_OVER of them.
    for terms in cands + sorted(auto_cands, key=lambda t: (-alone[id(t)], rank_key(t))):
        if id(terms) in won:
            continue
        if id(terms) in zero:
            ineligible.append(Skipped(terms, _nothing(terms), entered=False))
            continue
        if id(terms) in typed_ids:
            rejected.append(
                Skipped(
                    terms,
                    _lost(terms, winners, pricing, cart, policy, alone[id(terms)]),
                    entered=True,
                )
            )
        elif len(passed_over) < MAX_PASSED_OVER:
            passed_over.append(
                Skipped(
                    terms,
                    _lost(terms, winners, pricing, cart, policy, alone[id(terms)]),
                    entered=False,
                )
            )
    order = {t.code if t else text: i for i, (text, t, _) in enumerate(entered)}
    rejected.sort(key=lambda s: order.get(s.rejection.code or "", len(order)))
    return Evaluation(
        pricing=pricing,
        policy=policy,
        rejected=tuple(rejected),
        passed_over=tuple(passed_over),
        ineligible=tuple(ineligible),
        exact=exact,
        typed=frozenset(t.code for _, t, _ in entered if t),
    )


def price(
    entries: Sequence[tuple[str, CodeTerms | None, Usage]],
    shopper: Shopper,
    cart: Cart,
    now: datetime,
    policy: str,
) -> Pricing:
    """Typed codes only, all or nothing (the validate contract, without promotions)."""
    result = evaluate(entries, (), shopper, cart, now, policy)
    rejection = result.first_rejection
    return Pricing(rejection=rejection) if rejection else result.pricing
