"""The entitlements admin (entitlements/admin.py, admin_views.py): who may use it, the plan
x feature matrix (saved through billing.services.plan_update, errors as messages, nothing
half-saved), a customer's page (sources, usage, reservations, grants, history), the
"grant the features of plan X for N days" form and revoke, and the lists' links.

Users: staff members of the migrations' "entitlements" group (0002 and 0003) and of
billing's "finance" group (who may use the matrix: docs/entitlements-admin.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from billing.models import OutboxEvent, Plan
from billing.tests import support as billing
from entitlements import services
from entitlements.models import (
    PLANS_ACCOUNT,
    Account,
    EntitlementEvent,
    Feature,
    Grant,
    Reservation,
    Usage,
)
from entitlements.tests import support as t

pytestmark = pytest.mark.django_db

MATRIX = reverse("admin:entitlements_matrix")
CUSTOMER = reverse("admin:entitlements_customer")


# --- helpers --------------------------------------------------------------------------------


def staff(username: str, *groups: str, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, password="x", is_staff=True)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def ent_client(client):
    """The admin as "enzo", whose only rights come from the "entitlements" group."""
    client.force_login(staff("enzo", "entitlements"))
    return client


@pytest.fixture
def catalog():
    """projects (limit), sso (boolean), api_calls (metered); free (default: 3 projects, no
    sso), pro ($29: 10 projects, sso), team ($99: unlimited projects, sso)."""
    return t.setup_catalog()


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def page_of(customer_id: str) -> str:
    return f"{CUSTOMER}?{urlencode({'id': customer_id})}"


def matrix_data(client, **changes) -> dict:
    """The matrix form as the page shows it (every cell's current value), with `changes`
    on top: {"pro.projects": "20", "free.sso": "on", "team.sso": None (unticked)}."""
    form = client.get(MATRIX).context["form"]
    data: dict = {}
    for name, field in form.fields.items():
        value = form.get_initial_for_field(field, name)
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = str(value)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def features_of(code: str) -> dict:
    return Plan.objects.get(code=code).features


def plan_events() -> list[dict]:
    return list(
        OutboxEvent.objects.filter(type="plan.updated")
        .order_by("id")
        .values_list("payload", flat=True)
    )


def row(html: str, feature: str) -> str:
    """The text of a feature's row in the effective entitlements table."""
    section = html.split('id="ent-features"', 1)[1].split("</table>", 1)[0]
    match = re.search(rf'<tr data-feature="{feature}">(.*?)</tr>', section, re.S)
    assert match, f"no row for {feature}"
    return text(match.group(1)).strip()


def cell(html: str, feature: str, col: str) -> str:
    section = html.split('id="ent-features"', 1)[1].split("</table>", 1)[0]
    match = re.search(
        rf'<tr data-feature="{feature}">.*?data-col="{col}">(.*?)</td>', section, re.S
    )
    assert match, f"no {col} for {feature}"
    return text(match.group(1)).strip()


# --- access ---------------------------------------------------------------------------------


def test_the_entitlements_group_may_grant_and_revoke_but_never_delete():
    perms = set(
        Group.objects.get(name="entitlements").permissions.values_list("codename", flat=True)
    )
    assert {"add_grant", "change_grant", "view_grant", "change_feature", "view_feature"} <= perms
    assert {"view_usage", "view_reservation", "view_entitlementevent"} <= perms
    assert not any(p.startswith("delete_") for p in perms)


def test_the_index_lists_the_pages_for_the_group_and_finance_finds_the_matrix(ent_client, catalog):
    html = ent_client.get(reverse("admin:index")).content.decode()
    assert f'href="{MATRIX}"' in html
    assert f'href="{CUSTOMER}"' in html
    features = reverse("admin:entitlements_feature_changelist")
    assert html.index(f'href="{MATRIX}"') < html.index(f'href="{features}"')
    # finance has no Entitlements section: the matrix is listed under Billing
    ent_client.force_login(staff("fiona", "finance"))
    html = ent_client.get(reverse("admin:app_list", args=["billing"])).content.decode()
    assert f'href="{MATRIX}"' in html
    assert f'href="{CUSTOMER}"' not in html


def test_staff_without_the_group_get_403_and_others_the_login_page(client, catalog):
    client.force_login(staff("otto"))
    for url in (MATRIX, page_of("u-1")):
        assert client.get(url).status_code == 403, url
    assert client.post(MATRIX, {"pro.projects": "99"}).status_code == 403
    grant = {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": "14"}
    assert client.post(CUSTOMER, grant).status_code == 403
    assert f'href="{MATRIX}"' not in client.get(reverse("admin:index")).content.decode()
    # not staff at all: the admin's login page
    client.force_login(User.objects.create_user("nina", password="x"))
    response = client.get(MATRIX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert features_of("pro") == {"projects": 10, "sso": True}
    assert not Grant.objects.exists()


def test_view_only_users_see_the_matrix_and_the_customer_without_forms(client, catalog):
    client.force_login(
        staff(
            "vera",
            perms=(
                "entitlements.view_feature",
                "entitlements.view_grant",
                "entitlements.view_usage",
                "entitlements.view_reservation",
                "entitlements.view_entitlementevent",
            ),
        )
    )
    html = client.get(MATRIX).content.decode()
    assert 'name="pro.projects"' not in html
    assert 'id="matrix-save"' not in html
    assert 'data-plan="team" data-feature="projects" data-value="unlimited"' in html
    assert client.post(MATRIX, matrix_data(client, **{"pro.projects": "20"})).status_code == 403
    html = client.get(page_of("u-1")).content.decode()
    assert 'id="grant-form"' not in html
    grant = {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": "14"}
    assert client.post(CUSTOMER, grant).status_code == 403
    assert features_of("pro") == {"projects": 10, "sso": True}
    assert not Grant.objects.exists()


# --- the matrix -----------------------------------------------------------------------------


def test_the_matrix_shows_every_plan_and_feature_with_its_value(ent_client, catalog):
    response = ent_client.get(MATRIX)
    assert response.status_code == 200
    html = response.content.decode()
    for plan in ("free", "pro", "team"):
        assert f'<tr data-plan="{plan}">' in html
    for feature in ("projects", "sso", "api_calls"):
        assert f'<th scope="col" data-feature="{feature}">' in html
    expected = {
        ("free", "projects"): "3",
        ("free", "sso"): "no",
        ("free", "api_calls"): "—",
        ("pro", "projects"): "10",
        ("pro", "sso"): "yes",
        ("team", "projects"): "unlimited",
    }
    for (plan, feature), value in expected.items():
        assert f'data-plan="{plan}" data-feature="{feature}" data-value="{value}"' in html
    form = response.context["form"]
    assert form["pro.projects"].value() == 10
    assert form["team.projects.unlimited"].value() is True
    assert form["pro.sso"].value() is True
    assert form["free.sso"].value() is False
    assert "$29.00 / month" in html
    assert "default" in text(html.split('<tr data-plan="free">', 1)[1].split("</tr>", 1)[0])


def test_saving_the_matrix_changes_the_plans_features_through_billing(ent_client, catalog):
    Plan.objects.filter(code="pro").update(features={"projects": 10, "sso": True, "legacy": 1})
    # when: pro gets 20 projects and 5000 api calls, free gets sso, team is untouched
    response = ent_client.post(
        MATRIX,
        matrix_data(
            ent_client, **{"pro.projects": "20", "pro.api_calls": "5000", "free.sso": "on"}
        ),
        follow=True,
    )
    # then: back on the matrix with the new values and what changed
    assert response.redirect_chain == [(MATRIX, 302)]
    assert features_of("pro") == {"projects": 20, "sso": True, "legacy": 1, "api_calls": 5000}
    assert features_of("free") == {"projects": 3, "sso": True}
    assert features_of("team") == {"projects": None, "sso": True}
    # and billing wrote a plan.updated event per changed plan (its outbox)
    assert sorted(p["plan"] for p in plan_events()) == ["free", "pro"]
    assert {p["plan"]: p["features"] for p in plan_events()}["pro"]["projects"] == 20
    [message] = messages_of(response)
    assert message.startswith("Saved 2 plan(s):")
    assert "pro: api_calls — → 5000, projects 10 → 20" in message
    assert "free: sso no → yes" in message
    html = response.content.decode()
    assert 'data-plan="pro" data-feature="projects" data-value="20"' in html


def test_unlimited_and_blank_cells_store_null_and_remove_the_key(ent_client, catalog):
    ent_client.post(
        MATRIX,
        matrix_data(
            ent_client,
            **{
                "pro.projects": None,
                "pro.projects.unlimited": "on",
                "free.projects": "",
                "team.sso": None,
            },
        ),
    )
    assert features_of("pro") == {"projects": None, "sso": True}
    assert features_of("free") == {"sso": False}  # blank: the key is gone (not enabled)
    assert features_of("team") == {"projects": None, "sso": False}


def test_saving_an_unchanged_matrix_writes_nothing(ent_client, catalog):
    response = ent_client.post(MATRIX, matrix_data(ent_client), follow=True)
    assert messages_of(response) == ["Nothing changed."]
    assert plan_events() == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"pro.projects": "-1"}, "Pro (pro) / Projects (projects): Ensure this value is greater"),
        ({"pro.projects": "lots"}, "Pro (pro) / Projects (projects): Enter a whole number."),
        ({"pro.projects": "2.5"}, "Enter a whole number."),
        ({"free.api_calls": str(10**13)}, "less than or equal to 1000000000000"),
        (
            {"pro.projects": "20", "pro.projects.unlimited": "on"},
            "Enter a number or tick unlimited, not both.",
        ),
    ],
)
def test_bad_input_is_an_error_message_and_changes_nothing(ent_client, catalog, changes, error):
    # given a good change next to the bad one: nothing is half-saved
    data = matrix_data(ent_client, **{"free.sso": "on", **changes})
    response = ent_client.post(MATRIX, data)
    assert response.status_code == 200
    assert any(m.startswith("Not saved: ") and error in m for m in messages_of(response)), (
        messages_of(response)
    )
    assert 'class="errors"' in response.content.decode()
    assert features_of("pro") == {"projects": 10, "sso": True}
    assert features_of("free") == {"projects": 3, "sso": False}
    assert plan_events() == []


def test_a_form_without_its_fingerprint_is_refused(ent_client, catalog):
    data = matrix_data(ent_client, **{"pro.projects": "20"})
    del data["state"]
    response = ent_client.post(MATRIX, data)
    assert messages_of(response) == [
        "Not saved: The form was sent incomplete: reload the page and try again."
    ]
    assert features_of("pro") == {"projects": 10, "sso": True}


def test_a_plan_changed_since_the_page_was_loaded_is_not_overwritten(ent_client, catalog):
    data = matrix_data(ent_client, **{"pro.projects": "20"})
    Plan.objects.filter(code="pro").update(features={"projects": 12, "sso": True})  # meanwhile
    response = ent_client.post(MATRIX, data, follow=True)
    assert response.redirect_chain == [(MATRIX, 302)]
    [message] = messages_of(response)
    assert "changed since this page was loaded; nothing was saved" in message
    assert features_of("pro") == {"projects": 12, "sso": True}
    assert plan_events() == []
    assert response.context["form"]["pro.projects"].value() == 12


def test_a_refusal_of_billing_rolls_back_every_plan(ent_client, catalog, monkeypatch):
    from billing import services as billing_services
    from core.errors import Conflict

    real = billing_services.plan_update

    def refuse_team(*, code, fields):
        if code == "team":
            raise Conflict("plan_busy", "Team is busy.")
        return real(code=code, fields=fields)

    monkeypatch.setattr(billing_services, "plan_update", refuse_team)
    data = matrix_data(ent_client, **{"free.projects": "5", "team.api_calls": "9"})
    response = ent_client.post(MATRIX, data)
    assert messages_of(response) == ["Not saved: Team is busy."]
    assert features_of("free") == {"projects": 3, "sso": False}
    assert plan_events() == []


def test_finance_may_edit_the_matrix(client, catalog):
    client.force_login(staff("fiona", "finance"))
    assert client.get(MATRIX).status_code == 200
    client.post(MATRIX, matrix_data(client, **{"team.api_calls": "100000"}))
    assert features_of("team") == {"projects": None, "sso": True, "api_calls": 100000}
    assert [p["plan"] for p in plan_events()] == ["team"]


def test_a_retired_default_plan_is_still_a_row(ent_client, catalog):
    Plan.objects.filter(code="free").update(active=False)
    html = ent_client.get(MATRIX).content.decode()
    assert '<tr data-plan="free">' in html
    assert "retired" in html


# --- the customer page ----------------------------------------------------------------------


def test_the_customer_page_shows_sources_usage_reservations_grants_and_events(
    ent_client, catalog, storefront, django_capture_on_commit_callbacks
):
    # given u-1 on pro (a subscription), 2 projects reserved, a grant of api calls
    billing.customer("u-1", name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        billing.subscribe(storefront, customer_id="u-1", plan="pro")
    for n in range(2):
        services.reserve(customer_id="u-1", feature_key="projects", resource_id=f"proj-{n}")
    services.grant_create(
        customer_id="u-1",
        feature_key="api_calls",
        value=500,
        expires_at=timezone.now() + timedelta(days=3),
        reason="pilot",
        created_by="api",
    )
    # when
    response = ent_client.get(page_of("u-1"))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert cell(html, "projects", "source") == "plan"
    assert (cell(html, "projects", "limit"), cell(html, "projects", "used")) == ("10", "2")
    assert cell(html, "projects", "remaining") == "8"
    assert cell(html, "sso", "source") == "plan"
    assert cell(html, "api_calls", "source") == "grant"
    assert cell(html, "api_calls", "limit") == "500"
    assert cell(html, "api_calls", "expires") != "—"
    assert "Ada" in text(html.split('id="customer-summary"', 1)[1].split("</div>", 1)[0])
    assert "active" in text(html.split('id="summary-status"', 1)[1].split("</dd>", 1)[0])
    usage = html.split('id="ent-usage"', 1)[1].split("</table>", 1)[0]
    assert '<td class="num" data-col="used">2</td>' in usage
    reservations = html.split('id="ent-reservations"', 1)[1].split("</table>", 1)[0]
    assert 'data-resource="proj-0"' in reservations
    assert 'data-resource="proj-1"' in reservations
    grants = html.split('id="ent-grants"', 1)[1].split("</table>", 1)[0]
    assert 'data-feature="api_calls" data-state="live"' in grants
    assert "pilot" in grants
    events = html.split('id="ent-events"', 1)[1].split("</table>", 1)[0]
    kinds = re.findall(r'data-col="kind">(\w+)<', events)
    assert kinds[0] == "plan_changed"  # oldest first: the subscription, then the grant
    assert kinds[-1] == "granted"
    assert "value: 500 · reason: pilot" in text(events)


def test_a_customer_on_the_default_plan_and_an_unknown_customer(ent_client, catalog):
    html = ent_client.get(page_of("nobody")).content.decode()
    assert "Nothing is known about" in html
    assert cell(html, "projects", "source") == "default"
    assert cell(html, "projects", "limit") == "3"
    assert cell(html, "sso", "enabled") == "no"
    # no id: the search form only
    html = ent_client.get(CUSTOMER).content.decode()
    assert 'id="customer-search"' in html
    assert 'id="ent-features"' not in html


def test_the_search_lists_other_customers_whose_id_matches(ent_client, catalog):
    for customer_id in ("acme-1", "acme-2"):
        services.grant_create(
            customer_id=customer_id, feature_key="sso", value=True, expires_at=None
        )
    html = ent_client.get(page_of("acme")).content.decode()
    matches = html.split('id="customer-matches"', 1)[1].split("</div>", 1)[0]
    assert "?id=acme-1" in matches
    assert "?id=acme-2" in matches


def test_granting_the_features_of_a_plan_for_14_days(ent_client, catalog):
    before = timezone.now()
    response = ent_client.post(
        CUSTOMER,
        {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": "14", "reason": "trial ext"},
        follow=True,
    )
    # then: back on the customer's page
    assert response.redirect_chain == [(page_of("u-1"), 302)]
    grants = {g.feature.key: g for g in Grant.objects.select_related("feature")}
    assert set(grants) == {"projects", "sso"}  # pro has no api_calls: nothing to grant
    assert (grants["projects"].value, grants["sso"].value) == (10, True)
    for grant in grants.values():
        assert grant.customer_id == "u-1"
        assert grant.created_by == "enzo"
        assert grant.reason == "trial ext"
        assert (
            before + timedelta(days=14) <= grant.expires_at <= timezone.now() + timedelta(days=14)
        )
    [message] = messages_of(response)
    assert message.startswith("Granted u-1 the features of Pro until ")
    assert "projects (10), sso (yes)" in message
    html = response.content.decode()
    assert cell(html, "projects", "source") == "grant"
    assert cell(html, "projects", "limit") == "10"
    assert cell(html, "sso", "source") == "grant"
    assert cell(html, "api_calls", "source") == "default"
    assert EntitlementEvent.objects.filter(customer_id="u-1", kind="granted").count() == 2


def test_a_grant_for_a_customer_on_a_test_clock_runs_on_the_clocks_time(ent_client, catalog):
    ahead = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    clock = billing.clock(ahead.isoformat())
    billing.customer("u-clock", test_clock=clock)
    ent_client.post(
        CUSTOMER, {"op": "grant", "customer_id": "u-clock", "plan": "pro", "days": "14"}
    )
    assert {g.expires_at for g in Grant.objects.all()} == {ahead + timedelta(days=14)}
    html = ent_client.get(page_of("u-clock")).content.decode()
    assert cell(html, "sso", "source") == "grant"
    assert "(test clock)" in html


def test_a_plans_unlimited_value_is_granted_as_unlimited_or_refused_whole(ent_client, catalog):
    """Team's unlimited projects are granted as null (unlimited). Today the database
    refuses a null grant value (Grant.value is NOT NULL: services.grant_create fails on
    None); the page then says so and grants nothing, never a 500 or half the plan."""
    response = ent_client.post(
        CUSTOMER, {"op": "grant", "customer_id": "u-1", "plan": "team", "days": "3"}, follow=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    if Grant.objects.exists():
        grant = Grant.objects.get(feature__key="projects")
        assert grant.value is None
        assert grant.reason == "Features of plan team for 3 days"
        assert (cell(html, "projects", "limit"), cell(html, "projects", "source")) == (
            "unlimited",
            "grant",
        )
        assert Grant.objects.count() == 2
    else:
        assert messages_of(response) == [
            "Nothing granted: The database refused a grant (unlimited projects cannot be "
            "stored as a grant)."
        ]
        assert not EntitlementEvent.objects.exists()


def test_a_bad_grant_form_grants_nothing(ent_client, catalog):
    for days in ("0", "", "x", "5000"):
        response = ent_client.post(
            CUSTOMER, {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": days}
        )
        assert response.status_code == 200
        assert messages_of(response) == ["Nothing granted: correct the form."]
    response = ent_client.post(
        CUSTOMER, {"op": "grant", "customer_id": "u-1", "plan": "nope", "days": "14"}
    )
    assert "Select a valid choice" in response.content.decode()
    assert ent_client.post(CUSTOMER, {"op": "grant", "plan": "pro"}).status_code == 400
    assert ent_client.post(CUSTOMER, {"op": "other", "customer_id": "u-1"}).status_code == 400
    assert not Grant.objects.exists()


def test_a_refused_grant_rolls_back_the_plans_other_grants(ent_client, catalog, monkeypatch):
    from core.errors import Invalid

    real = services.grant_create

    def refuse_sso(**kwargs):
        if kwargs["feature_key"] == "sso":
            raise Invalid("invalid_request", "No sso today.")
        return real(**kwargs)

    monkeypatch.setattr(services, "grant_create", refuse_sso)
    response = ent_client.post(
        CUSTOMER, {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": "14"}
    )
    assert messages_of(response) == ["Nothing granted: No sso today."]
    assert not Grant.objects.exists()
    assert not EntitlementEvent.objects.exists()


def test_revoking_a_live_grant_from_the_customer_page(ent_client, catalog):
    ent_client.post(CUSTOMER, {"op": "grant", "customer_id": "u-1", "plan": "pro", "days": "14"})
    sso = Grant.objects.get(feature__key="sso")
    html = ent_client.get(page_of("u-1")).content.decode()
    assert f'data-revoke="{sso.pk}"' in html
    response = ent_client.post(
        CUSTOMER, {"op": "revoke", "customer_id": "u-1", "grant_id": str(sso.pk)}, follow=True
    )
    assert messages_of(response) == ["Revoked the grant of sso to u-1."]
    sso.refresh_from_db()
    assert sso.revoked_at is not None
    event = EntitlementEvent.objects.get(grant=sso, kind="revoked")
    assert event.detail == {"reason": "revoked in the admin", "by": "enzo"}
    html = response.content.decode()
    assert cell(html, "sso", "source") == "default"
    assert cell(html, "sso", "enabled") == "no"
    assert cell(html, "projects", "source") == "grant"
    assert f'data-grant="{sso.pk}" data-feature="sso" data-state="revoked"' in html
    assert f'data-revoke="{sso.pk}"' not in html
    # a grant of another customer, or no grant: an error message, nothing revoked
    response = ent_client.post(
        CUSTOMER, {"op": "revoke", "customer_id": "u-2", "grant_id": str(sso.pk)}, follow=True
    )
    assert messages_of(response) == ["Not revoked: No such grant for this customer."]
    response = ent_client.post(
        CUSTOMER, {"op": "revoke", "customer_id": "u-1", "grant_id": "zzz"}, follow=True
    )
    assert messages_of(response) == ["Not revoked: No such grant for this customer."]


def test_revoking_needs_the_change_right(client, catalog):
    grant = services.grant_create(customer_id="u-1", feature_key="sso", value=True, expires_at=None)
    client.force_login(
        staff(
            "gus",
            perms=(
                "entitlements.view_grant",
                "entitlements.view_usage",
                "entitlements.view_reservation",
                "entitlements.view_entitlementevent",
                "entitlements.add_grant",
            ),
        )
    )
    html = client.get(page_of("u-1")).content.decode()
    assert 'id="grant-form"' in html
    assert "data-revoke=" not in html
    revoke = {"op": "revoke", "customer_id": "u-1", "grant_id": str(grant.pk)}
    assert client.post(CUSTOMER, revoke).status_code == 403
    grant.refresh_from_db()
    assert grant.revoked_at is None


# --- the lists ------------------------------------------------------------------------------


def test_the_lists_link_rows_to_the_customer_page_and_filter_by_customer(ent_client, catalog):
    services.reserve(customer_id="u-1", feature_key="projects", resource_id="p-1")
    services.reserve(customer_id="u-2", feature_key="projects", resource_id="p-9")
    grant = services.grant_create(
        customer_id="u-1", feature_key="sso", value=True, expires_at=None, reason="beta"
    )
    link = f'href="{page_of("u-1")}"'
    for model in ("grant", "usage", "reservation", "entitlementevent"):
        url = reverse(f"admin:entitlements_{model}_changelist")
        response = ent_client.get(url)
        assert response.status_code == 200, model
        assert link in response.content.decode(), model
        filtered = ent_client.get(f"{url}?customer_id=u-1")
        assert filtered.status_code == 200, model
        assert f'href="{page_of("u-2")}"' not in filtered.content.decode(), model
    change = ent_client.get(reverse("admin:entitlements_grant_change", args=[grant.pk]))
    assert change.status_code == 200
    assert link in change.content.decode()
    assert 'name="_save"' not in change.content.decode()


def test_the_grant_list_shows_states_and_revokes_the_selected(ent_client, catalog):
    live = services.grant_create(customer_id="u-1", feature_key="sso", value=True, expires_at=None)
    gone = services.grant_create(
        customer_id="u-2",
        feature_key="projects",
        value=5,
        expires_at=timezone.now() + timedelta(days=1),
    )
    Grant.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    url = reverse("admin:entitlements_grant_changelist")
    assert ent_client.get(f"{url}?state=live").context["cl"].result_count == 1
    assert ent_client.get(f"{url}?state=expired").context["cl"].result_count == 1
    response = ent_client.post(
        url, {"action": "revoke_selected", "_selected_action": [str(live.pk)]}, follow=True
    )
    assert "Revoked 1 grant(s)." in messages_of(response)
    live.refresh_from_db()
    assert live.revoked_at is not None
    assert ent_client.get(f"{url}?state=revoked").context["cl"].result_count == 1


def test_a_feature_added_in_the_admin_goes_through_the_service(ent_client):
    before = Account.objects.filter(customer_id=PLANS_ACCOUNT).first()
    response = ent_client.post(
        reverse("admin:entitlements_feature_add"),
        {"key": "seats", "name": "Seats", "type": "limit", "description": "people"},
    )
    assert response.status_code == 302, response.content
    assert Feature.objects.get(key="seats").type == "limit"
    # feature_create moved the plans' version: every cached answer lists the features
    after = Account.objects.get(customer_id=PLANS_ACCOUNT)
    assert after.version == (before.version if before else 0) + 1
    # key and type are fixed; the name changes
    feature = Feature.objects.get(key="seats")
    ent_client.post(
        reverse("admin:entitlements_feature_change", args=[feature.pk]),
        {"name": "Seats (people)", "description": "people"},
    )
    feature.refresh_from_db()
    assert (feature.name, feature.type) == ("Seats (people)", "limit")
    listing = ent_client.get(reverse("admin:entitlements_feature_changelist")).content.decode()
    assert f'href="{MATRIX}"' in listing
    assert Usage.objects.count() == Reservation.objects.count() == 0
