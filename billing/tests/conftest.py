"""Billing test fixtures: the finance staff user of the admin, and a small billing history
on a test clock (billing.tests.history)."""

import pytest
from django.contrib.auth.models import Group, User

from billing.tests import history


@pytest.fixture
def finance_client(client):
    """The admin as a staff user ("fiona") whose only rights come from the migration's
    "finance" group (billing/migrations/0002_finance_group_and_schedules.py)."""
    user = User.objects.create_user("fiona", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    client.force_login(user)
    return client


@pytest.fixture
def outsider_client(client):
    """A staff user without the finance group."""
    client.force_login(User.objects.create_user("otto", password="x", is_staff=True))
    return client


@pytest.fixture
def billing_history(db) -> history.History:
    return history.build()
