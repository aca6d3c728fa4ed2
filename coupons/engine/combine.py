"""Which eligible coupons to use together, and in which order (the best deal).

Valid sets are defined pairwise by the site's stacking policy (`conflict`). Among them the
engine picks the set and application order with the largest total discount (merchandise
plus shipping). Two facts keep the search small and exact:

- Adding a compatible coupon never lowers the total (apply it last: it takes >= 0 and the
  others are unchanged), so only *maximal* valid sets need pricing.
- What a coupon takes never grows as earlier coupons shrink the cart (every discount type
  is monotone in what is left to pay). So "what each unused coupon would take right now"
  bounds what the rest of an order can still add: branch and bound over orders prunes
  almost everything, while staying exact.

Ties keep the first set/order found; sets are enumerated in rank order (priority, then
code), so the higher-ranked coupons win ties. Beyond EXACT_LIMIT candidates the search is
bounded (see `best_combination`). docs/decisions.md has the reasoning.
"""

from __future__ import annotations

from collections.abc import Sequence

from coupons.engine import reasons as r
from coupons.engine import types as T
from coupons.engine.discounts import compute, take_total
from coupons.engine.eligibility import eligible_line_indexes
from coupons.engine.types import Applied, Cart, CodeTerms, Pricing

EXACT_LIMIT = 8  # candidates searched exactly; more are pre-selected (bounded strategy)
# Percentages first, then per-unit and threshold rewards, fixed amounts last: the order
# tried first (a percentage is worth more on the larger base).
_TYPE_ORDER = {T.PERCENTAGE: 0, T.BOGO: 1, T.TIERED: 2, T.FIXED: 3, T.FREE_SHIPPING: 4}
STATE_BUDGET = 600  # order-search states per evaluation before settling for the best found


class Budget:
    """Order-search states left for one evaluation (shared by all the sets it prices)."""

    def __init__(self, states: int = STATE_BUDGET):
        self.left = states


def stack_group(terms: CodeTerms) -> str:
    """A coupon without an explicit group stacks in the group of its type."""
    if terms.rule.stack_group:
        return terms.rule.stack_group
    return "shipping" if terms.rule.type == T.FREE_SHIPPING else terms.rule.type


def conflict(a: CodeTerms, b: CodeTerms, policy: str) -> str | None:
    """The reason `a` and `b` cannot be used on one order, or None."""
    if a.rule.coupon_id == b.rule.coupon_id:
        return r.STACK_GROUP_CONFLICT  # one coupon applies at most once per order
    if policy == "none" or not a.rule.stackable or not b.rule.stackable:
        return r.NOT_STACKABLE
    if policy == "by_group" and stack_group(a) == stack_group(b):
        return r.STACK_GROUP_CONFLICT
    return None


def rank_key(terms: CodeTerms) -> tuple:
    """Tie-break order: higher priority first, then code."""
    return (-terms.rule.priority, terms.code)


def apply_in_order(order: Sequence[CodeTerms], cart: Cart) -> Pricing:
    """Apply the coupons literally in this order, each on what the earlier ones left."""
    remaining = [line.amount for line in cart.lines]
    shipping_left = cart.shipping
    applied = []
    for terms in order:
        lines, shipping, message = compute(terms.rule, cart, remaining, shipping_left)
        remaining = [left - taken for left, taken in zip(remaining, lines, strict=True)]
        shipping_left -= shipping
        applied.append(
            Applied(
                terms=terms,
                discount=sum(lines),
                shipping_discount=shipping,
                line_discounts=tuple(lines),
                message=message,
            )
        )
    line_discounts = tuple(
        line.amount - left for line, left in zip(cart.lines, remaining, strict=True)
    )
    return Pricing(
        applied=tuple(applied),
        line_discounts=line_discounts,
        discount=sum(line_discounts),
        shipping_discount=cart.shipping - shipping_left,
    )


def total_of(p: Pricing) -> int:
    return p.discount + p.shipping_discount


def standalone(terms: CodeTerms, cart: Cart) -> int:
    """What the coupon takes on its own (merchandise + shipping), the most it can ever
    take in a stack. Same as total_of(apply_in_order([terms], cart)), without building
    the per-line split or the message."""
    if terms.rule.type == T.FREE_SHIPPING:
        return cart.shipping
    return take_total(
        terms.rule,
        cart,
        [line.amount for line in cart.lines],
        eligible_line_indexes(terms.rule, cart),
    )


class _Search:
    """Branch and bound over application orders of one set of merchandise coupons.

    Three exact prunings keep it small: (1) the bound: what the unused coupons would take
    now, capped by what is left on their lines; (2) orders that reach the same state
    (same coupons used, same amounts left on every line; e.g. coupons on disjoint lines
    in either order) share one subtree; (3) what a coupon takes depends only on its own
    lines, so it is computed once per distinct state of those lines.
    """

    def __init__(self, coupons: Sequence[CodeTerms], cart: Cart, budget: Budget):
        self.coupons = list(coupons)
        self.cart = cart
        self.best_total = -1
        self.best_order: list[int] = []
        self.budget = budget
        self.exhausted = False
        self.lines = [eligible_line_indexes(t.rule, cart) for t in self.coupons]
        self.seen: set[tuple] = set()
        self.totals: dict[tuple, int] = {}
        self.splits: dict[tuple, list[int]] = {}

    def _key(self, i: int, remaining: list[int]) -> tuple:
        return (i, tuple(remaining[k] for k in self.lines[i]))

    def take(self, i: int, remaining: list[int]) -> int:
        key = self._key(i, remaining)
        hit = self.totals.get(key)
        if hit is None:
            hit = self.totals[key] = take_total(
                self.coupons[i].rule, self.cart, remaining, self.lines[i]
            )
        return hit

    def split(self, i: int, remaining: list[int]) -> list[int]:
        key = self._key(i, remaining)
        hit = self.splits.get(key)
        if hit is None:
            hit = self.splits[key] = compute(
                self.coupons[i].rule, self.cart, remaining, 0, self.lines[i]
            )[0]
        return hit

    def run(self) -> list[CodeTerms]:
        # Start from the better of two plain orders, so a search cut short by the budget
        # never answers less than them: rank order, and percentages first (the usual
        # best: a percentage works on the larger base).
        n = len(self.coupons)
        for order in (
            list(range(n)),
            sorted(range(n), key=lambda i: (_TYPE_ORDER[self.coupons[i].rule.type], i)),
        ):
            total = self._walk(order)
            if total > self.best_total:
                self.best_total, self.best_order = total, order
        self._visit([line.amount for line in self.cart.lines], 0, [], frozenset(range(n)))
        return [self.coupons[i] for i in self.best_order]

    def _walk(self, order: list[int]) -> int:
        remaining = [line.amount for line in self.cart.lines]
        total = 0
        for i in order:
            total += self.take(i, remaining)
            lines = self.split(i, remaining)
            remaining = [left - d for left, d in zip(remaining, lines, strict=True)]
        return total

    def _visit(
        self, remaining: list[int], total: int, order: list[int], unused: frozenset[int]
    ) -> None:
        self.budget.left -= 1
        if not unused:
            if total > self.best_total:
                self.best_total, self.best_order = total, list(order)
            return
        if self.budget.left < 0:
            self.exhausted = True  # keep the best order found (run() seeded two)
            return
        takes = [(self.take(i, remaining), i) for i in unused]
        # What is left on the lines the unused coupons can touch caps them too. (Not line
        # by line: a coupon's split across its lines moves as other coupons apply.)
        reachable = {k for i in unused for k in self.lines[i]}
        bound = total + min(sum(t for t, _ in takes), sum(remaining[k] for k in reachable))
        if bound <= self.best_total:
            return
        state = (unused, tuple(remaining))
        if state in self.seen:
            return  # another order reached the same state: same subtree
        self.seen.add(state)
        takes.sort(key=lambda t: (-t[0], t[1]))
        for take, i in takes:
            lines = self.split(i, remaining)
            nxt = [left - d for left, d in zip(remaining, lines, strict=True)]
            order.append(i)
            self._visit(nxt, total + take, order, unused - {i})
            order.pop()


def best_order(
    coupons: Sequence[CodeTerms], cart: Cart, *, budget: Budget | None = None
) -> tuple[Pricing, bool]:
    """The order of these coupons with the largest total discount -> (pricing, exact).

    Free shipping only touches shipping and everything else only merchandise lines, so
    the merchandise coupons are ordered by search and free shipping goes last (in rank
    order: the first takes the shipping price, a second one has nothing left).
    """
    merch = sorted((t for t in coupons if t.rule.type != T.FREE_SHIPPING), key=rank_key)
    ship = sorted((t for t in coupons if t.rule.type == T.FREE_SHIPPING), key=rank_key)
    exact = True
    if len(merch) > 1:
        search = _Search(merch, cart, budget or Budget())
        merch = search.run()
        exact = not search.exhausted
    return apply_in_order(merch + ship, cart), exact


def _maximal_sets(cands: Sequence[CodeTerms], policy: str) -> list[list[int]]:
    """Every maximal pairwise-compatible set of candidate indexes, in rank order
    (including a candidate is tried before leaving it out)."""
    n = len(cands)
    ok = [
        [i == j or conflict(cands[i], cands[j], policy) is None for j in range(n)] for i in range(n)
    ]
    out: list[list[int]] = []

    def visit(i: int, chosen: list[int]) -> None:
        if i == n:
            if all(not all(ok[k][c] for c in chosen) for k in range(n) if k not in chosen):
                out.append(list(chosen))
            return
        if all(ok[i][c] for c in chosen):
            chosen.append(i)
            visit(i + 1, chosen)
            chosen.pop()
        visit(i + 1, chosen)

    visit(0, [])
    return out


def best_combination(
    cands: Sequence[CodeTerms], cart: Cart, policy: str, alone: dict[int, int] | None = None
) -> tuple[Pricing, bool]:
    """The valid set and order with the largest total discount -> (pricing, exact).
    At equal totals the first found wins: sets are enumerated in rank order, and each
    set's search starts from its rank order.

    Up to EXACT_LIMIT candidates: every maximal valid set, each ordered by branch and
    bound; a set whose standalone discounts cannot beat the best so far is skipped.
    Beyond that (bounded strategy): the EXACT_LIMIT candidates worth most on their own
    (ties by rank) are searched exactly, then every other candidate still compatible with
    the winners is appended, best standalone first, if it adds anything; the greedy sets
    by rank and by standalone value are priced too, and the best of these wins.
    """
    cands = sorted(cands, key=rank_key)
    if not cands:
        return apply_in_order([], cart), True
    if alone is None:  # id(terms) -> standalone value (evaluate passes its own)
        alone = {id(t): standalone(t, cart) for t in cands}
    pool, rest = cands, []
    if len(cands) > EXACT_LIMIT:
        by_value = sorted(cands, key=lambda t: (-alone[id(t)], rank_key(t)))
        keep = {id(t) for t in by_value[:EXACT_LIMIT]}
        pool = [t for t in cands if id(t) in keep]
        rest = [t for t in by_value if id(t) not in keep]

    ceiling_merch, ceiling_ship = cart.subtotal, cart.shipping
    budget = Budget()

    best: Pricing | None = None
    exact = len(cands) <= EXACT_LIMIT
    for indexes in _maximal_sets(pool, policy):
        members = [pool[i] for i in indexes]
        merch = sum(alone[id(t)] for t in members if t.rule.type != T.FREE_SHIPPING)
        ship = sum(alone[id(t)] for t in members if t.rule.type == T.FREE_SHIPPING)
        bound = min(merch, ceiling_merch) + min(ship, ceiling_ship)
        if best is not None and bound <= total_of(best):
            continue
        pricing, set_exact = best_order(members, cart, budget=budget)
        exact = exact and set_exact
        if best is None or total_of(pricing) > total_of(best):
            best = pricing
    assert best is not None  # noqa: S101 - at least one (possibly empty) set exists

    if rest:
        best = _bounded_extension(best, rest, (cands, by_value), cart, policy, budget)
    return best, exact


def _bounded_extension(
    best: Pricing,
    rest: Sequence[CodeTerms],
    greedy_orders: tuple[Sequence[CodeTerms], ...],
    cart: Cart,
    policy: str,
    budget: Budget,
) -> Pricing:
    """The bounded strategy after the exact search of the pool: append every other
    candidate still compatible with the winners (best standalone first) if it adds
    anything, then price a greedy set per order in greedy_orders; the best of these."""
    order = [a.terms for a in best.applied]
    remaining = [line.amount - d for line, d in zip(cart.lines, best.line_discounts, strict=True)]
    shipping_left = cart.shipping - best.shipping_discount
    for t in rest:
        if any(conflict(t, o, policy) is not None for o in order):
            continue
        lines, shipping, _ = compute(t.rule, cart, remaining, shipping_left)
        if sum(lines) + shipping > 0:
            order.append(t)
            remaining = [left - d for left, d in zip(remaining, lines, strict=True)]
            shipping_left -= shipping
    if len(order) > len(best.applied):
        best = apply_in_order(order, cart)
    # Two greedy sets over all candidates (by rank, by standalone value) as a floor.
    for ordered in greedy_orders:
        greedy: list[CodeTerms] = []
        for t in ordered:
            if all(conflict(t, g, policy) is None for g in greedy):
                greedy.append(t)
        pricing, _ = best_order(greedy, cart, budget=budget)
        if total_of(pricing) > total_of(best):
            best = pricing
    return best
