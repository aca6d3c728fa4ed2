"""The redemption lifecycle as a hypothesis state machine (issue "Reliability harness", 3).

Random interleavings of apply (service and HTTP), replay, confirm, release, return,
back-dating reservations and the expiry job run against a real PostgreSQL through the
service functions. A plain-Python model predicts every outcome (applied, rejected with
which reason, replayed, conflict, not found) and every row; after each step the database
is checked against the model and against invariants that need no model:

- coupon.uses == its live (reserved + confirmed) redemptions <= max_uses_total;
- code.uses == its live redemptions <= max_uses;
- live redemptions per (coupon, customer) <= max_uses_per_user;
- at most one live redemption per (coupon, order);
- statuses only move reserved -> confirmed / released / expired, never back, and a row
  never disappears;
- a rejected or conflicting apply created nothing; a successful one created exactly the
  rows it reported (and a replay none).

The services run `transaction.atomic(durable=True)`, so the test is a
`django_db(transaction=True)` test and every example starts by deleting the coupon rows
and creating fresh coupons under codes no earlier example used (no stale cache entry).
Budget: HYPOTHESIS_STATEFUL_EXAMPLES (default 40) examples of up to 25 steps.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db.models import Count, Q
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.test import APIClient

from core.errors import DomainError
from core.models import ApiKey, IdempotencyRecord
from coupons import selectors, services
from coupons.engine import reasons as r
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import HOLDING, Code, Coupon, Customer, Redemption, RedemptionStatus
from coupons.tests.factories import CouponFactory
from tests.support import cart as api_cart

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("HYPOTHESIS_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("HYPOTHESIS_STATEFUL_STEPS", "25"))

RESERVED, CONFIRMED = RedemptionStatus.RESERVED, RedemptionStatus.CONFIRMED
RELEASED, EXPIRED = RedemptionStatus.RELEASED, RedemptionStatus.EXPIRED
LIVE = {RESERVED, CONFIRMED}
# Allowed moves of one redemption between two observations.
NEXT = {
    RESERVED: {RESERVED, CONFIRMED, RELEASED, EXPIRED},
    CONFIRMED: {CONFIRMED},
    RELEASED: {RELEASED},
    EXPIRED: {EXPIRED},
}


@dataclass(frozen=True)
class CouponSpec:
    max_total: int | None
    per_user: int | None = None
    stackable: bool = True
    group: str = ""


@dataclass(frozen=True)
class CodeSpec:
    coupon: str
    max_uses: int | None = None


# Small limits so they are reached within a few steps; "C" has a second, limited code.
COUPONS = {
    "A": CouponSpec(max_total=2, group="ga"),
    "B": CouponSpec(max_total=3, per_user=1, group="gb"),
    "C": CouponSpec(max_total=4, group="gc"),
    "D": CouponSpec(max_total=None, stackable=False),
}
CODES = {
    "A": CodeSpec("A"),
    "B": CodeSpec("B"),
    "C": CodeSpec("C"),
    "CX": CodeSpec("C", max_uses=2),
    "D": CodeSpec("D"),
}
UNKNOWN = "NOPE"
CODE_NAMES = [*CODES, UNKNOWN]
CUSTOMERS = [None, "u1", "u2", "u3"]
ORDERS = [f"o{i}" for i in range(8)]

CART = Cart(
    currency="USD", lines=(Line(sku="SKU-1", category="books", unit_price=4000, quantity=1),)
)
API_CART = api_cart(("SKU-1", "books", "40.00", 1))
APPLY_URL = "/api/v1/coupons/apply"

_examples = itertools.count()

code_names = st.lists(st.sampled_from(CODE_NAMES), min_size=1, max_size=3)
known_code = st.sampled_from(list(CODES))
customers = st.sampled_from(CUSTOMERS)
orders = st.sampled_from(ORDERS)


@dataclass
class Row:
    """The model's view of one redemption."""

    coupon: str
    code: str
    customer: str | None
    order: str
    status: str = RESERVED
    backdated: bool = False
    returned_minor: int | None = None


STACKING = frozenset({r.NOT_STACKABLE, r.STACK_GROUP_CONFLICT})


def _reasons(expected) -> frozenset:
    return expected if isinstance(expected, frozenset) else frozenset({expected})


class Lifecycle(RuleBasedStateMachine):
    client: APIClient  # set by the test (one storefront key for all examples)

    def __init__(self):
        super().__init__()
        self.ready = False

    # --- set-up -------------------------------------------------------------------------

    @initialize()
    def fresh_data(self):
        Redemption.objects.all().delete()
        Code.objects.all().delete()
        Coupon.objects.all().delete()
        Customer.objects.all().delete()
        IdempotencyRecord.objects.all().delete()
        cache.clear()
        selectors._local.clear()
        n = next(_examples)
        self.text = {name: f"SM{n}{name}" for name in CODE_NAMES}  # name -> code string
        self.name_of = {t: name for name, t in self.text.items()}
        self.coupon_pk = {}
        for name, spec in COUPONS.items():
            coupon = CouponFactory(
                code=self.text[name],
                max_uses_total=spec.max_total,
                max_uses_per_user=spec.per_user,
                stackable=spec.stackable,
                stack_group=spec.group,
            )
            self.coupon_pk[name] = coupon.pk
        for name, spec in CODES.items():
            if name not in COUPONS:
                Code.objects.create(
                    coupon_id=self.coupon_pk[spec.coupon],
                    code=self.text[name],
                    max_uses=spec.max_uses,
                )
        self.code_pk = dict(Code.objects.values_list("code", "pk"))
        self.rows: dict[uuid.UUID, Row] = {}
        self.http_log: list[tuple[str, dict, int, dict]] = []
        self.seen: dict[uuid.UUID, str] = {}
        self.ready = True

    # --- the model ----------------------------------------------------------------------

    def live(self, **match) -> list[uuid.UUID]:
        return [
            pk
            for pk, x in self.rows.items()
            if x.status in LIVE and all(getattr(x, k) == v for k, v in match.items())
        ]

    def order_rows(self, order: str) -> list[uuid.UUID]:
        return [pk for pk, x in self.rows.items() if x.order == order]

    def predict_apply(self, entered: list[str], customer: str | None, order: str):
        """("applied", [code names]) | ("replayed", {ids}) | ("rejected", reason)
        | ("conflict", error code), exactly as API.md and services.py describe apply."""
        wanted = list(dict.fromkeys(selectors.normalize_code(c) for c in entered))
        held = self.live(order=order)
        if held:
            same_codes = {self.text[self.rows[pk].code] for pk in held} == set(wanted)
            same_customer = all(self.rows[pk].customer == customer for pk in held)
            if same_codes and same_customer:
                return "replayed", set(held)
            return "conflict", "order_has_coupons"
        # 1. conditions, in request order: the first failure is the answer
        eligible: list[str] = []
        for text in wanted:
            name = self.name_of.get(text)
            if name is None or name == UNKNOWN:
                return "rejected", r.COUPON_NOT_FOUND
            coupon = CODES[name].coupon
            spec = COUPONS[coupon]
            if (spec.max_total is not None and len(self.live(coupon=coupon)) >= spec.max_total) or (
                CODES[name].max_uses is not None
                and len(self.live(code=name)) >= CODES[name].max_uses
            ):
                return "rejected", r.USAGE_LIMIT_REACHED
            if spec.per_user is not None:
                if customer is None:
                    return "rejected", r.CUSTOMER_REQUIRED
                if len(self.live(coupon=coupon, customer=customer)) >= spec.per_user:
                    return "rejected", r.CUSTOMER_LIMIT_REACHED
            eligible.append(name)
        # 2. stacking: all of them combine, or the better deal wins and the rest are
        # rejected with a stacking reason (which one loses is the engine tests' business)
        coupons = [CODES[n].coupon for n in eligible]
        for i, a in enumerate(coupons):
            for b in coupons[i + 1 :]:
                if (
                    a == b
                    or not COUPONS[a].stackable
                    or not COUPONS[b].stackable
                    or COUPONS[a].group == COUPONS[b].group
                ):
                    return "rejected", STACKING
        return "applied", eligible

    def record_applied(
        self, ids: list[uuid.UUID], expected: list[str], customer: str | None, order: str
    ) -> None:
        """A successful apply reported `ids`: exactly those rows are new, one per code."""
        new = set(Redemption.objects.values_list("pk", flat=True)) - set(self.rows)
        assert new == set(ids), (new, ids)
        assert len(ids) == len(expected)
        created = {
            x.pk: x
            for x in Redemption.objects.select_related("code", "customer").filter(pk__in=ids)
        }
        assert sorted(self.name_of[x.code.code] for x in created.values()) == sorted(expected)
        for pk in ids:  # in the reported order: the model's order must not depend on uuids
            x = created[pk]
            assert x.status == RESERVED
            assert x.order_id == order
            assert (x.customer.external_id if x.customer_id else None) == customer
            name = self.name_of[x.code.code]
            assert x.coupon_id == self.coupon_pk[CODES[name].coupon]
            self.rows[pk] = Row(
                coupon=CODES[name].coupon, code=name, customer=customer, order=order
            )

    # --- apply and replay ---------------------------------------------------------------

    def entered(self, names: list[str], lower: bool) -> list[str]:
        return [self.text[n].lower() if lower else self.text[n] for n in names]

    @rule(name=known_code, customer=customers, data=st.data(), lower=st.booleans())
    def apply_one(self, name, customer, data, lower):
        """The common checkout: one code for an order that holds none (so the limits are
        reached within a few steps)."""
        free = [o for o in ORDERS if not self.live(order=o)]
        order = data.draw(st.sampled_from(free or ORDERS))
        self.apply(names=[name], customer=customer, order=order, lower=lower)

    @rule(names=code_names, customer=customers, order=orders, lower=st.booleans())
    def apply(self, names, customer, order, lower):
        """Any codes (stacked, repeated, unknown) for a new or an existing order."""
        entered = self.entered(names, lower)
        kind, expected = self.predict_apply(entered, customer, order)
        event(f"apply: {kind} {expected if kind in ('rejected', 'conflict') else ''}")
        try:
            result = services.redemption_apply(
                codes=entered, shopper=Shopper(id=customer), cart=CART, order_id=order
            )
        except DomainError as exc:
            assert (kind, expected) == ("conflict", exc.code)
            return
        if result.rejection is not None:
            assert kind == "rejected"
            assert result.rejection.reason in _reasons(expected)
            assert result.redemptions == []
        elif result.replayed:
            assert kind == "replayed"
            assert {x.pk for x in result.redemptions} == expected
        else:
            assert kind == "applied", (kind, expected)
            self.record_applied([x.pk for x in result.redemptions], expected, customer, order)

    @precondition(lambda self: self.ready and any(x.status in LIVE for x in self.rows.values()))
    @rule(data=st.data(), lower=st.booleans())
    def replay(self, data, lower):
        """The same codes (any order, any case) for an order that holds them: the same
        rows back, no use taken."""
        order = data.draw(
            st.sampled_from(sorted({x.order for x in self.rows.values() if x.status in LIVE}))
        )
        held = self.live(order=order)
        names = data.draw(st.permutations([self.rows[pk].code for pk in held]))
        holder = self.rows[held[0]].customer
        customer = data.draw(st.just(holder) | customers)  # another customer: a conflict
        try:
            result = services.redemption_apply(
                codes=self.entered(names, lower),
                shopper=Shopper(id=customer),
                cart=CART,
                order_id=order,
            )
        except DomainError as exc:
            assert customer != holder
            assert exc.code == "order_has_coupons"
            return
        assert customer == holder, "another customer's apply replayed this order's coupons"
        assert result.replayed
        assert result.rejection is None
        assert {x.pk for x in result.redemptions} == set(held)

    # --- HTTP apply with an Idempotency-Key ---------------------------------------------

    @rule(names=code_names, customer=customers, order=orders)
    def http_apply(self, names, customer, order):
        body = {"coupon_codes": self.entered(names, False), "order_id": order, "cart": API_CART}
        if customer is not None:
            body["customer"] = {"id": customer}
        kind, expected = self.predict_apply(body["coupon_codes"], customer, order)
        key = f"sm-{uuid.uuid4()}"
        response = self.client.post(APPLY_URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        payload = response.json()
        if kind == "conflict":
            assert response.status_code == 409
            assert payload["error"]["code"] == expected
        elif kind == "rejected":
            assert response.status_code == 422
            assert payload["reason"] in _reasons(expected)
        else:
            assert response.status_code == 200, payload
            ids = [uuid.UUID(x["id"]) for x in payload["redemptions"]]
            if kind == "replayed":
                assert set(ids) == expected
            else:
                self.record_applied(ids, expected, customer, order)
        self.http_log.append((key, body, response.status_code, payload))

    @precondition(lambda self: self.ready and self.http_log)
    @rule(data=st.data(), other_body=st.booleans())
    def http_replay(self, data, other_body):
        """The same key again, at any later time: the first response, nothing applied; the
        same key with another body: 409."""
        key, body, status, payload = data.draw(st.sampled_from(self.http_log))
        if other_body:
            body = {**body, "order_id": body["order_id"] + "-other"}
        response = self.client.post(APPLY_URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        if other_body:
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "idempotency_key_reused"
        else:
            assert (response.status_code, response.json()) == (status, payload)
            assert response["Idempotent-Replayed"] == "true"

    # --- confirm / release / return -----------------------------------------------------

    @rule(order=orders)
    def confirm(self, order):
        ids = self.order_rows(order)
        try:
            result = services.order_confirm(order_id=order)
        except DomainError as exc:
            if not ids:
                assert exc.code == "order_not_found"
            else:
                assert exc.code == "reservation_expired"
                assert all(self.rows[pk].status in (RELEASED, EXPIRED) for pk in ids)
            return
        for pk in ids:
            if self.rows[pk].status == RESERVED:
                self.rows[pk].status = CONFIRMED
        assert any(self.rows[pk].status == CONFIRMED for pk in ids)
        assert {x.pk: x.status for x in result} == {pk: self.rows[pk].status for pk in ids}

    @rule(order=orders)
    def release(self, order):
        ids = self.order_rows(order)
        for pk in ids:
            if self.rows[pk].status == RESERVED:
                self.rows[pk].status = RELEASED
        try:
            result = services.order_release(order_id=order)
        except DomainError as exc:
            if not ids:
                assert exc.code == "order_not_found"
            else:
                assert exc.code == "order_confirmed"
                assert any(self.rows[pk].status == CONFIRMED for pk in ids)
            return
        assert not any(self.rows[pk].status == CONFIRMED for pk in ids)
        assert {x.pk: x.status for x in result} == {pk: self.rows[pk].status for pk in ids}

    @rule(order=orders, amount=st.none() | st.integers(min_value=0, max_value=5000))
    def return_goods(self, order, amount):
        ids = self.order_rows(order)
        try:
            services.order_return(order_id=order, amount_minor=amount)
        except DomainError as exc:
            if not ids:
                assert exc.code == "order_not_found"
            else:
                assert exc.code == "order_not_confirmed"
                assert not any(self.rows[pk].status == CONFIRMED for pk in ids)
            return
        confirmed = [pk for pk in ids if self.rows[pk].status == CONFIRMED]
        assert confirmed
        for pk in confirmed:
            if self.rows[pk].returned_minor is None:
                self.rows[pk].returned_minor = (
                    CART.subtotal if amount is None else min(amount, CART.subtotal)
                )

    # --- expiry -------------------------------------------------------------------------

    def backdate_some(self, data) -> None:
        reserved = [pk for pk, x in self.rows.items() if x.status == RESERVED]
        chosen = data.draw(st.lists(st.sampled_from(reserved), min_size=1, unique=True))
        Redemption.objects.filter(pk__in=chosen).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        for pk in chosen:
            self.rows[pk].backdated = True

    def run_expiry(self) -> None:
        due = [pk for pk, x in self.rows.items() if x.status == RESERVED and x.backdated]
        event(f"expiry job: {min(len(due), 2)}+ due")
        assert services.redemptions_expire_stale() == len(due)
        for pk in due:
            self.rows[pk].status = EXPIRED

    @precondition(lambda self: self.ready and any(x.status == RESERVED for x in self.rows.values()))
    @rule(data=st.data())
    def backdate(self, data):
        """Holds run out; the beat job has not run yet (any step may come in between)."""
        self.backdate_some(data)

    @precondition(
        lambda self: (
            self.ready and any(x.status == RESERVED and x.backdated for x in self.rows.values())
        )
    )
    @rule()
    def expiry_job(self):
        self.run_expiry()

    @precondition(lambda self: self.ready and any(x.status == RESERVED for x in self.rows.values()))
    @rule(data=st.data())
    def expire(self, data):
        self.backdate_some(data)
        self.run_expiry()

    # --- invariants (from the database) -------------------------------------------------

    @invariant()
    def counters_match_live_rows(self):
        if not self.ready:
            return
        live = Count("redemptions", filter=Q(redemptions__status__in=HOLDING))
        for c in Coupon.objects.annotate(live=live):
            assert c.uses == c.live, f"coupon {c.code}: uses={c.uses}, live rows={c.live}"
            assert c.max_uses_total is None or c.uses <= c.max_uses_total
        for k in Code.objects.annotate(live=live):
            assert k.uses == k.live, f"code {k.code}: uses={k.uses}, live rows={k.live}"
            assert k.max_uses is None or k.uses <= k.max_uses

    @invariant()
    def per_customer_and_per_order_limits(self):
        if not self.ready:
            return
        holding = Redemption.objects.filter(status__in=HOLDING)
        for row in (
            holding.filter(customer__isnull=False, coupon__max_uses_per_user__isnull=False)
            .values("coupon", "customer", "coupon__max_uses_per_user")
            .annotate(n=Count("pk"))
        ):
            assert row["n"] <= row["coupon__max_uses_per_user"], row
        for row in holding.values("coupon", "order_id").annotate(n=Count("pk")):
            assert row["n"] == 1, row

    @invariant()
    def statuses_only_move_forward_and_match_the_model(self):
        if not self.ready:
            return
        now = dict(Redemption.objects.values_list("pk", "status"))
        for pk, before in self.seen.items():
            assert pk in now, f"redemption {pk} disappeared"
            assert now[pk] in NEXT[before], f"redemption {pk}: {before} -> {now[pk]}"
        self.seen = now
        db = {
            pk: (status, returned)
            for pk, status, returned in Redemption.objects.values_list(
                "pk", "status", "returned_minor"
            )
        }
        assert db == {pk: (x.status, x.returned_minor) for pk, x in self.rows.items()}

    def teardown(self):
        if self.ready:  # --hypothesis-show-statistics style coverage notes
            for status in Counter(x.status for x in self.rows.values()):
                event(f"final: some {status}")
        self.ready = False


@override_settings(STACKING_POLICY="by_group")
def test_redemption_lifecycle_state_machine():
    _, key = ApiKey.objects.create_key(name="stateful", scopes=["storefront"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    Lifecycle.client = client
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
