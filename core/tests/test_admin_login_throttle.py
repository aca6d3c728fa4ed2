"""Admin login throttling (django-axes; docs/operations.md, "Admin login throttling and HTTPS"):
AXES_FAILURE_LIMIT wrong passwords for one username from one IP lock that pair out, even
for the right password; other IPs and other users are unaffected; a superuser sees the
lockout in the admin and deleting it (or `manage.py axes_reset_username`) unlocks."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")
ATTEMPTS = reverse("admin:axes_accessattempt_changelist")
RIGHT = "correct horse battery staple"


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("sam", password=RIGHT, is_staff=True)


def login(client: Client, username: str, password: str, **meta):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": reverse("admin:index")}, **meta
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail_until_locked(client: Client, username: str, **meta):
    """Wrong passwords up to the limit: the form again each time, 429 on the last."""
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert login(client, username, "wrong", **meta).status_code == 200
    return login(client, username, "wrong", **meta)


def test_wrong_passwords_lock_the_user_out_and_the_right_one_is_refused(client, staff):
    # when
    locked = fail_until_locked(client, "sam")
    right = login(client, "sam", RIGHT)

    # then
    assert locked.status_code == 429
    assert right.status_code == 429
    assert not logged_in(client)
    text = right.content.decode()
    assert "locked" in text
    assert f"{settings.AXES_COOLOFF_MINUTES} minutes" in text
    assert "administrator" in text
    attempt = AccessAttempt.objects.get(username="sam")
    assert attempt.ip_address == "127.0.0.1"
    assert attempt.failures_since_start >= settings.AXES_FAILURE_LIMIT
    assert AccessFailureLog.objects.filter(username="sam", locked_out=True).exists()


def test_many_more_wrong_passwords_than_the_limit_are_all_refused(client, staff):
    fail_until_locked(client, "sam")

    responses = [login(client, "sam", "wrong").status_code for _ in range(20)]

    assert set(responses) == {429}


def test_the_same_user_from_another_ip_is_not_locked(client, staff):
    fail_until_locked(client, "sam")

    other = Client()
    response = login(other, "sam", RIGHT, REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 302
    assert logged_in(other)
    assert login(client, "sam", RIGHT).status_code == 429  # still locked at the first IP


def test_another_user_from_the_same_ip_is_not_locked(client, staff):
    User.objects.create_user("ana", password=RIGHT, is_staff=True)
    assert fail_until_locked(client, "sam").status_code == 429

    response = login(client, "ana", RIGHT)

    assert response.status_code == 302
    assert logged_in(client)


def test_the_lockout_ends_after_the_cool_off(client, staff):
    fail_until_locked(client, "sam")
    cool_off = timedelta(minutes=settings.AXES_COOLOFF_MINUTES)

    # given the last failure is older than the cool-off
    attempt = AccessAttempt.objects.get(username="sam")
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - cool_off - timedelta(seconds=1)
    )

    assert login(client, "sam", RIGHT).status_code == 302
    assert logged_in(client)


def test_a_success_resets_the_failures(client, staff):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        login(client, "sam", "wrong")

    # when the right password comes before the limit
    assert login(client, "sam", RIGHT).status_code == 302
    client.logout()

    # then the count starts again from zero
    assert not AccessAttempt.objects.filter(username="sam").exists()
    assert fail_until_locked(client, "sam").status_code == 429


def test_a_superuser_sees_the_lockout_and_deleting_it_unlocks(client, staff):
    fail_until_locked(client, "sam")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=RIGHT))

    # the lockout is listed in the admin
    listing = admin.get(ATTEMPTS)
    assert listing.status_code == 200
    assert "sam" in listing.content.decode()
    assert "Locked Out" in listing.content.decode()
    locked = admin.get(ATTEMPTS, {"locked_out": "yes"})
    assert "sam" in locked.content.decode()

    # when the superuser deletes it
    attempt = AccessAttempt.objects.get(username="sam")
    delete = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert admin.post(delete, {"post": "yes"}).status_code == 302

    # then the user can log in again
    assert not AccessAttempt.objects.filter(username="sam").exists()
    assert login(client, "sam", RIGHT).status_code == 302
    assert logged_in(client)


def test_axes_reset_username_unlocks(client, staff):
    assert fail_until_locked(client, "sam").status_code == 429

    call_command("axes_reset_username", "sam")

    assert login(client, "sam", RIGHT).status_code == 302
    assert logged_in(client)


def test_axes_reset_unlocks_everyone(client, staff):
    assert fail_until_locked(client, "sam").status_code == 429

    call_command("axes_reset")

    assert login(client, "sam", RIGHT).status_code == 302


def test_marketing_staff_do_not_see_login_attempts(marketing_client):
    assert marketing_client.get(ATTEMPTS).status_code == 403
    index = marketing_client.get(reverse("admin:index")).content.decode()
    assert "Access attempts" not in index


PROXY = {
    "AXES_IPWARE_META_PRECEDENCE_ORDER": ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"],
    "AXES_IPWARE_PROXY_COUNT": 0,
}


@override_settings(**PROXY)
def test_behind_the_proxy_the_forwarded_client_ip_is_locked(client, staff):
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    fail_until_locked(client, "sam", HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)

    assert AccessAttempt.objects.get(username="sam").ip_address == "203.0.113.5"
    assert (
        login(client, "sam", RIGHT, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy).status_code == 429
    )
    other = Client()
    response = login(other, "sam", RIGHT, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    assert response.status_code == 302


@override_settings(**PROXY)
def test_behind_the_proxy_forged_forwarded_ips_do_not_escape_the_limit(client, staff):
    # given a client that sends its own X-Forwarded-For, a new address every time, which
    # the proxy appends to: the header has two entries and is not trusted
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [
        login(
            client,
            "sam",
            "wrong",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.5",
        ).status_code
        for n in range(limit)
    ]

    assert statuses[-1] == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.2"}
