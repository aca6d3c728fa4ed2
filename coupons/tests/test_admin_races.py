"""Admin saves racing checkouts: editing a code or a customer in the Django admin writes
only the edited columns under the row's lock, so a use taken (apply) or an order counted
(confirm) while the page was open is never written back over."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from coupons import services
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import HOLDING, Code, Coupon, Customer, Redemption
from coupons.tests.factories import CouponFactory, CustomerFactory
from tests.race import race_calls, unexpected

pytestmark = pytest.mark.django_db(transaction=True)

CART = Cart(
    currency="USD", lines=(Line(sku="SKU-1", category="books", unit_price=4000, quantity=1),)
)
APPLIES = 60
EDITS = 20


def admin_clients(n: int) -> list[Client]:
    user = User.objects.create_superuser("ops", password="x")
    clients = []
    for _ in range(n):
        client = Client()
        client.force_login(user)
        clients.append(client)
    return clients


def test_admin_code_edits_racing_applies_lose_no_use():
    # given a code being redeemed while staff edit its limit in the admin
    coupon = CouponFactory(code="ADMINRACE")
    code = Code.objects.get(code="ADMINRACE")
    url = reverse("admin:coupons_code_change", args=[code.pk])
    clients = admin_clients(EDITS)

    def edit(i: int):
        def call():
            response = clients[i].post(
                url,
                {
                    "coupon": coupon.pk,
                    "max_uses": 1000 + i,
                    "expires_at_0": "",
                    "expires_at_1": "",
                    "customer": "",
                    "active": "on",
                },
            )
            assert response.status_code == 302, response.content[:500]
            return response

        return call

    def apply(i: int):
        return lambda: services.redemption_apply(
            codes=["ADMINRACE"], shopper=Shopper(id=f"c-{i}"), cart=CART, order_id=f"o-{i}"
        )

    edits = [edit(i) for i in range(EDITS)]
    applies = [apply(i) for i in range(APPLIES)]
    # interleaved: an edit after every three applies
    calls = [
        c
        for group in itertools.zip_longest(applies[0::3], applies[1::3], applies[2::3], edits)
        for c in group
        if c is not None
    ]
    # when they all run at once
    outcomes = race_calls(calls, workers=24)
    # then every use is counted: the counters equal the live redemptions
    assert not unexpected(outcomes), unexpected(outcomes)
    live = Redemption.objects.filter(code__code="ADMINRACE", status__in=HOLDING).count()
    assert live == APPLIES
    code.refresh_from_db()
    coupon.refresh_from_db()
    assert (code.uses, coupon.uses) == (APPLIES, APPLIES)
    assert 1000 <= code.max_uses < 1000 + EDITS  # and the edits landed


def test_admin_customer_edits_racing_confirms_lose_no_order():
    # given a customer confirming orders while staff edit their segments
    CouponFactory(code="LOYAL")
    customer = CustomerFactory(external_id="vip")
    url = reverse("admin:coupons_customer_change", args=[customer.pk])
    clients = admin_clients(EDITS)
    orders = [f"vip-{i}" for i in range(APPLIES // 2)]
    for order_id in orders:
        services.redemption_apply(
            codes=["LOYAL"], shopper=Shopper(id="vip"), cart=CART, order_id=order_id
        )

    def edit(i: int):
        def call():
            response = clients[i].post(url, {"segments": f"vip,tier-{i}"})
            assert response.status_code == 302, response.content[:500]
            return response

        return call

    def confirm(order_id: str):
        return lambda: services.order_confirm(order_id=order_id)

    confirms = [confirm(o) for o in orders]
    edits = [edit(i) for i in range(EDITS)]
    calls = [c for group in itertools.zip_longest(confirms, edits) for c in group if c is not None]
    # when the confirms and the edits run at once
    outcomes = race_calls(calls, workers=24)
    # then every confirmed order is counted, and the segments are one of the edits
    assert not unexpected(outcomes), unexpected(outcomes)
    customer.refresh_from_db()
    assert customer.orders_count == len(orders)
    assert customer.segments[0] == "vip"
    assert customer.segments[1].startswith("tier-")


def test_admin_code_limit_below_uses_is_refused_with_a_message():
    CouponFactory(code="USED")
    code = Code.objects.get(code="USED")
    for i in range(3):
        services.redemption_apply(
            codes=["USED"], shopper=Shopper(id=f"u-{i}"), cart=CART, order_id=f"u-{i}"
        )
    (client,) = admin_clients(1)
    response = client.post(
        reverse("admin:coupons_code_change", args=[code.pk]),
        {
            "coupon": code.coupon_id,
            "max_uses": 2,
            "expires_at_0": "",
            "expires_at_1": "",
            "customer": "",
            "active": "on",
        },
    )
    # the form's own check says it (the service re-checks under the lock)
    assert response.status_code == 200
    assert b"already been used 3 times" in response.content
    code.refresh_from_db()
    assert (code.max_uses, code.uses) == (None, 3)


def test_code_update_refuses_counters():
    code = Code.objects.get(code=CouponFactory(code="CNT").code)
    with pytest.raises(Exception, match="cannot be set"):
        services.code_update(code_id=code.pk, fields={"uses": 0})
    customer = CustomerFactory()
    with pytest.raises(Exception, match="cannot be set"):
        services.customer_update(customer_id=customer.pk, fields={"orders_count": 0})
    assert Coupon.objects.get(code="CNT").uses == 0
    assert Customer.objects.get(pk=customer.pk).orders_count == 0
