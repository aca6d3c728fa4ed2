"""Demo data for `make run`: the seed's coupons, an admin and a marketing login, and
fresh API keys, all printed. Safe to run again (existing coupons are left alone)."""

import secrets
from datetime import timedelta

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.utils import timezone

from core.models import ApiKey
from coupons import demo_history, services
from coupons.campaigns import services as campaign_services
from coupons.campaigns.models import Campaign
from coupons.models import Coupon

DEMO_CAMPAIGN = "Demo flash sale"


def demo_coupons(now):
    window = {"valid_from": now - timedelta(days=1), "valid_to": now + timedelta(days=90)}
    return [
        # The seed's SUMMER25; stackable here so the seed's SUMMER25 + FREESHIP example works.
        dict(
            code="SUMMER25",
            type="percentage",
            percent_bp=2500,
            cap_minor=5000,
            min_cart_minor=10000,
            eligible_categories=["electronics", "clothing"],
            eligible_segments=["premium_members"],
            max_uses_total=10000,
            max_uses_per_user=1,
            excluded_skus=["SKU-GIFT-CARD"],
            stackable=True,
            stack_group="percentage",
            description="25% off electronics and clothing",
            **window,
        ),
        dict(
            code="FREESHIP",
            type="free_shipping",
            stackable=True,
            stack_group="shipping",
            description="Free shipping",
            **window,
        ),
        dict(
            code="FALL20",
            type="percentage",
            percent_bp=2000,
            stackable=True,
            stack_group="percentage",
            description="20% off everything",
            **window,
        ),
        dict(
            code="FLASH50",
            type="percentage",
            percent_bp=5000,
            cap_minor=10000,
            max_uses_total=1000,
            description="Flash sale: 50% off, first 1,000 orders",
            **window,
        ),
        dict(
            code="TENOFF",
            type="fixed",
            amount_minor=1000,
            stackable=True,
            stack_group="fixed",
            description="$10 off",
            **window,
        ),
        dict(
            code="SOCKS-BOGO",
            type="bogo",
            bogo_buy=1,
            bogo_get=1,
            bogo_percent_bp=10000,
            eligible_categories=["socks"],
            description="Buy one pair of socks, get one free",
            **window,
        ),
        dict(
            code="SPEND-MORE",
            type="tiered",
            description="$10 off $100, $30 off $200",
            tiers=[
                {"threshold_minor": 10000, "discount_minor": 1000},
                {"threshold_minor": 20000, "discount_minor": 3000},
            ],
            **window,
        ),
        # Auto-apply promotions (no code). Each is limited to a category, so the
        # walkthrough's electronics carts price exactly as the seed describes.
        dict(
            code="TOYS-WEEKEND",
            type="percentage",
            percent_bp=1000,
            auto_apply=True,
            eligible_categories=["toys"],
            stackable=True,
            stack_group="percentage",
            description="Weekend sale: 10% off toys",
            **window,
        ),
        dict(
            code="GARDEN-SHIP",
            type="free_shipping",
            auto_apply=True,
            eligible_categories=["garden"],
            stackable=True,
            stack_group="shipping",
            description="Free shipping on garden orders",
            **window,
        ),
        dict(
            code="HOME-15",
            type="fixed",
            amount_minor=1500,
            min_cart_minor=10000,
            auto_apply=True,
            eligible_categories=["home"],
            stackable=True,
            stack_group="fixed",
            description="$15 off home orders over $100",
            **window,
        ),
    ]


def _demo_lines(app) -> list[str]:
    hook = getattr(app, "demo_load", None)
    return list(hook()) if callable(hook) else []


class Command(BaseCommand):
    help = "Load demo coupons, create demo logins and API keys, and print them."

    def handle(self, *args, **options):
        now = timezone.now()
        for fields in demo_coupons(now):
            if not Coupon.objects.filter(code=fields["code"]).exists():
                services.coupon_create(fields=fields)
        campaign = Campaign.objects.filter(name=DEMO_CAMPAIGN).first()
        if campaign is None:
            # A flash sale live for a week: 100 claims of 50% off (max $20).
            campaign = campaign_services.campaign_create(
                name=DEMO_CAMPAIGN,
                inventory=100,
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(days=7),
                claim_hold_minutes=15,
                discount={
                    "type": "percentage",
                    "percent_bp": 5000,
                    "cap_minor": 2000,
                    "currency": "USD",
                },
            )
        history = demo_history.load()
        # Other apps' demo data (billing ...), through their AppConfig: coupons imports none.
        extra = [line for app in apps.get_app_configs() for line in _demo_lines(app)]
        User = get_user_model()
        admin_password = secrets.token_urlsafe(9)
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        marketing_password = secrets.token_urlsafe(9)
        marketer, _ = User.objects.get_or_create(
            username="marketing", defaults={"email": "marketing@example.com"}
        )
        marketer.is_staff = True
        marketer.set_password(marketing_password)
        marketer.save()
        marketer.groups.add(Group.objects.get(name="marketing"))
        finance_password = secrets.token_urlsafe(9)
        finance, _ = User.objects.get_or_create(
            username="finance", defaults={"email": "finance@example.com"}
        )
        finance.is_staff = True
        finance.set_password(finance_password)
        finance.save()
        finance_group = Group.objects.filter(name="finance").first()
        if finance_group is not None:
            finance.groups.add(finance_group)
        _, storefront_key = ApiKey.objects.create_key(name="demo-storefront", scopes=["storefront"])
        _, admin_key = ApiKey.objects.create_key(name="demo-admin", scopes=["admin"])
        out = self.stdout.write
        out("")
        out("=" * 72)
        out("Demo data loaded: " + ", ".join(c["code"] for c in demo_coupons(now)))
        out("Admin:            http://127.0.0.1:8000/admin/")
        out(f"  superuser       admin / {admin_password}")
        out(f"  marketing user  marketing / {marketing_password}")
        out(f"  finance user    finance / {finance_password}")
        out(f"Storefront key:   {storefront_key}")
        out(f"Admin API key:    {admin_key}")
        out(f"Flash sale:       {DEMO_CAMPAIGN} -> POST /api/v1/campaigns/{campaign.pk}/claim")
        if history:
            out(
                f"Analytics:        {history:,} demo checkout events over two weeks -> "
                "/admin/analytics/dailycouponfact/"
            )
        for line in extra:
            out(line)
        out("API docs:         http://127.0.0.1:8000/api/docs/")
        out(f"Try it:           export KEY={storefront_key}   (then see README.md)")
        out("=" * 72)
