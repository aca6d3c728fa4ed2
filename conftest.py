"""Shared fixtures for every test package: API clients with scoped keys, customer JWT
clients, and a clean Redis cache (tests use their own Redis database)."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from rest_framework.test import APIClient

from core import auth
from core.models import ApiKey
from coupons import promotions, selectors
from coupons.analytics import events
from entitlements import cache as entitlements_cache
from tests.support import customer_token


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts with empty caches: Redis (the test database) and the per-process
    copies of coupon definitions and verified API keys."""
    cache.clear()
    selectors._local.clear()
    promotions.reset()
    auth._key_cache.clear()
    entitlements_cache.reset()
    events.discard()
    yield
    events.discard()  # buffered analytics events never outlive their test


@pytest.fixture
def marketing_client(client):
    """The admin as a staff user ("mia") whose only rights come from the migrations'
    "marketing" group."""
    user = User.objects.create_user("mia", password="x", is_staff=True)  # noqa: S106
    user.groups.add(Group.objects.get(name="marketing"))
    client.force_login(user)
    return client


def _client(scopes: list[str]) -> APIClient:
    _, key = ApiKey.objects.create_key(name="test", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def storefront(db) -> APIClient:
    """Client with a storefront-scoped API key."""
    return _client(["storefront"])


@pytest.fixture
def admin_api(db) -> APIClient:
    """Client with an admin-scoped API key."""
    return _client(["admin"])


@pytest.fixture
def customer_client(db):
    """factory: customer_client("u-1") -> APIClient authenticated as that end customer."""

    def make(sub: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {customer_token(sub)}")
        return client

    return make


@pytest.fixture
def migration_groups(db):
    """The staff groups the data migrations create, present again: a transactional test
    that ran earlier in this process flushed them (seed_demo adds its logins to them)."""
    for name in ("marketing", "finance", "entitlements"):
        Group.objects.get_or_create(name=name)
