"""factory-boy factories for the coupon models (times are evaluated per object)."""

from datetime import timedelta

import factory
from django.utils import timezone

from coupons.models import Code, Coupon, Customer


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n}")


class CouponFactory(factory.django.DjangoModelFactory):
    """A live 10% coupon with a public code of the same name."""

    class Meta:
        model = Coupon
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"COUPON{n}")
    type = "percentage"
    currency = "USD"
    percent_bp = 1000
    valid_from = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    valid_to = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))

    @factory.post_generation
    def public_code(self, create, extracted, **kwargs):
        if create:
            Code.objects.create(coupon=self, code=extracted or self.code)


class CodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Code

    coupon = factory.SubFactory(CouponFactory)
    code = factory.Sequence(lambda n: f"CODE{n:06d}")
