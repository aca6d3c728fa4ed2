"""Row locks for the coupon services, always taken in one order so two transactions can
never deadlock: coupons, then codes, then customers, then redemptions, each by pk."""

from __future__ import annotations

from collections.abc import Iterable

from coupons.models import Code, Coupon, Customer, Redemption


def coupons_lock(ids: Iterable[int]) -> dict[int, Coupon]:
    return {c.pk: c for c in Coupon.objects.select_for_update().filter(pk__in=set(ids))
            .order_by("pk")}


def codes_lock(ids: Iterable[int]) -> dict[int, Code]:
    return {c.pk: c for c in Code.objects.select_for_update(of=("self",))
            .select_related("customer").filter(pk__in=set(ids)).order_by("pk")}


def customers_lock(ids: Iterable[int]) -> dict[int, Customer]:
    return {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=set(ids))
            .order_by("pk")}


def customer_lock_or_create(external_id: str) -> Customer:
    """Insert-if-missing without a read-then-write race, then lock the row."""
    Customer.objects.bulk_create([Customer(external_id=external_id)], ignore_conflicts=True)
    return Customer.objects.select_for_update().get(external_id=external_id)


def redemptions_lock(ids: Iterable) -> list[Redemption]:
    return list(Redemption.objects.select_for_update(of=("self",)).filter(pk__in=set(ids))
                .order_by("pk"))
