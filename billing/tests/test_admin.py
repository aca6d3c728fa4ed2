"""The finance admin: who may see it, every list and change page with data, plans saved
through the services (errors as form errors or messages, never a 500), the subscription
actions, the invoice document and refund, the dunning page's numbers and the overview's.

Data: billing.tests.history (a small history on a test clock, built through the
services); the user is a staff member of the migration's "finance" group."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse

from billing import admin as billing_admin
from billing.models import (
    BillingCustomer,
    CreditNote,
    Invoice,
    OutboxEvent,
    PaymentAttempt,
    Plan,
    Subscription,
    TestClock,
)
from billing.tests import support as t

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("admin:billing_overview")
DUNNING = reverse("admin:billing_dunning")
SUBSCRIPTIONS = reverse("admin:billing_subscription_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def change_url(obj) -> str:
    return reverse(f"admin:billing_{obj._meta.model_name}_change", args=[obj.pk])


def invoice_of(customer_id: str, **filters) -> Invoice:
    return Invoice.objects.filter(customer__customer_id=customer_id, **filters).earliest(
        "created_at"
    )


def act(client, action: str, *subs: Subscription, **extra):
    """Run a subscription action and follow its redirect (which shows, and so uses up,
    its messages: `messages_of` sees this action's only)."""
    return client.post(
        SUBSCRIPTIONS,
        {"action": action, "_selected_action": [str(s.pk) for s in subs], **extra},
        follow=True,
    )


def landed(response) -> str:
    return response.redirect_chain[-1][0]


def text(html: str) -> str:
    """The page's text with tags and runs of whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- access ---------------------------------------------------------------------------------


def test_the_finance_group_comes_from_the_migration():
    perms = set(Group.objects.get(name="finance").permissions.values_list("codename", flat=True))
    assert {"view_subscription", "change_subscription", "change_invoice", "view_invoice"} <= perms
    assert {"view_creditentry", "view_subscriptiontransition", "view_outboxevent"} <= perms
    assert not any(p.startswith("delete_") for p in perms)


def test_finance_sees_the_pages_from_the_index_and_others_do_not(
    finance_client, billing_history, django_user_model
):
    # given the finance user: the Billing section lists the two pages first
    for url in (reverse("admin:index"), reverse("admin:app_list", args=["billing"])):
        html = finance_client.get(url).content.decode()
        assert f'href="{OVERVIEW}"' in html
        assert f'href="{DUNNING}"' in html
        assert html.index(f'href="{OVERVIEW}"') < html.index(f'href="{SUBSCRIPTIONS}"')
    # when a staff user without the group asks
    finance_client.force_login(django_user_model.objects.create_user("otto", is_staff=True))
    invoice = invoice_of("fin-a")
    for url in (
        OVERVIEW,
        DUNNING,
        SUBSCRIPTIONS,
        reverse("admin:billing_invoice_changelist"),
        reverse("admin:billing_plan_changelist"),
        reverse("admin:billing_invoice_document", args=[invoice.pk]),
        reverse("admin:billing_invoice_refund", args=[invoice.pk]),
    ):
        # then every page is refused
        assert finance_client.get(url).status_code == 403, url
    assert OVERVIEW not in finance_client.get(reverse("admin:index")).content.decode()
    assert (
        finance_client.post(
            reverse("admin:billing_invoice_refund", args=[invoice.pk]), {"amount": "1.00"}
        ).status_code
        == 403
    )
    assert not CreditNote.objects.exists()


# --- lists and change pages -----------------------------------------------------------------


def test_every_list_and_change_page_renders_with_data(finance_client, billing_history):
    CreditNote.objects.create(
        number="CN-900001",
        invoice=invoice_of("fin-a"),
        amount_minor=100,
        currency="USD",
        created_at=billing_history.clock.frozen_time,
    )
    pages = {
        Plan: ("$10.00", "€20.00", "$120.00"),
        BillingCustomer: ("fin-a", "$0.00"),
        Subscription: ("fin-e", "Past due"),
        Invoice: ("INV-000001", "$29.00", "View invoice"),
        PaymentAttempt: (invoice_of("fin-f", status="uncollectible").number, "card_declined"),
        CreditNote: ("CN-900001", "$1.00"),
        OutboxEvent: ("invoice.payment_failed",),
        TestClock: ("March 12, 2026", "Ready"),
    }
    for model, expected in pages.items():
        name = model._meta.model_name
        listing = finance_client.get(reverse(f"admin:billing_{name}_changelist"))
        assert listing.status_code == 200, name
        html = text(listing.content.decode())
        for fragment in expected:
            assert fragment in html, (name, fragment)
        # a filter and a search (where there is one) do not break the list
        filtered = finance_client.get(
            reverse(f"admin:billing_{name}_changelist"), {"q": "fin", "o": "1"}
        )
        assert filtered.status_code == 200, name
        row = model.objects.order_by("pk").first()
        assert finance_client.get(change_url(row)).status_code == 200, name
    # no money is shown as a float anywhere
    html = finance_client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "2900" not in text(html).replace("INV-", "")


def test_a_customer_page_shows_the_credit_ledger_read_only(finance_client, billing_history):
    customer = BillingCustomer.objects.get(customer_id="fin-a")
    from billing import services

    services.credit_grant(
        customer_id="fin-a",
        amount_minor=750,
        currency="USD",
        kind="referral_reward",
        reference="ref-1",
        description="Referral of fin-z",
    )
    html = finance_client.get(change_url(customer)).content.decode()
    assert "credit ledger" in html.lower()
    assert "$7.50" in html
    assert "Referral of fin-z" in html
    assert 'name="credit_balance_minor"' not in html
    assert 'name="credits-0-amount_minor"' not in html  # the inline is read-only
    assert "2026-03-12 12:00" in html  # the customer's clock time


def test_a_subscription_page_shows_its_history_invoices_and_buttons(
    finance_client, billing_history
):
    sub = billing_history.sub("fin-e")
    html = text(finance_client.get(change_url(sub)).content.decode())
    assert "active past_due renewal_payment_failed" in html
    assert "past_due active payment_succeeded" in html
    for invoice in sub.invoices.all():
        assert invoice.number in html
    assert "Cancel at period end" in html
    assert "Cancel now" in html
    assert "Save" not in html.replace("Save as", "")  # read-only: no Save button


def test_an_invoice_page_shows_lines_attempts_and_credit_notes(finance_client, billing_history):
    invoice = invoice_of("fin-f", status="uncollectible")
    html = text(finance_client.get(change_url(invoice)).content.decode())
    assert "Basic (Feb 10, 2026 - Mar 10, 2026)" in html
    assert html.count("card_declined") == 5
    assert "$10.00" in html
    assert "View invoice" in html
    assert reverse("admin:billing_invoice_refund", args=[invoice.pk]) not in html  # unpaid


# --- plans ----------------------------------------------------------------------------------


def test_a_plan_is_added_with_a_decimal_amount(finance_client):
    response = finance_client.post(
        reverse("admin:billing_plan_add"),
        {
            "code": "starter",
            "name": "Starter",
            "amount": "15.50",
            "currency": "usd",
            "interval": "month",
            "trial_days": "7",
            "active": "on",
            "features": '{"projects": 5}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = Plan.objects.get(code="starter")
    assert (plan.amount_minor, plan.currency, plan.features) == (1550, "USD", {"projects": 5})
    listing = finance_client.get(reverse("admin:billing_plan_changelist")).content.decode()
    assert "$15.50" in listing


def test_a_new_default_plan_takes_the_default_from_the_old_one(finance_client):
    old = t.plan("free", 0, is_default=True)
    response = finance_client.post(
        reverse("admin:billing_plan_add"),
        {
            "code": "free2",
            "name": "Free 2",
            "amount": "0",
            "currency": "USD",
            "interval": "month",
            "trial_days": "0",
            "is_default": "on",
            "active": "on",
            "features": "{}",
        },
    )
    assert response.status_code == 302
    old.refresh_from_db()
    assert not old.is_default
    assert Plan.objects.get(code="free2").is_default


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("amount", "12.345", "at most 2 decimal places"),
        ("amount", "-1", "must not be negative"),
        ("currency", "XXX", "ISO-4217"),
        ("trial_days", "999", "plan_trial_days_max"),
        ("code", "pro", "already exists"),
    ],
)
def test_bad_plan_input_is_a_form_error(finance_client, field, value, error):
    t.plan("pro", 2900)
    data = {
        "code": "new",
        "name": "New",
        "amount": "10.00",
        "currency": "USD",
        "interval": "month",
        "trial_days": "0",
        "features": "{}",
        field: value,
    }
    response = finance_client.post(reverse("admin:billing_plan_add"), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Plan.objects.filter(code="new").exists()


def test_a_plan_without_subscribers_changes_its_price(finance_client):
    plan = t.plan("pro", 2900)
    response = finance_client.get(change_url(plan))
    assert 'name="amount" value="29.00"' in response.content.decode()
    data = {
        "name": "Pro",
        "amount": "39.00",
        "currency": "USD",
        "interval": "month",
        "trial_days": "0",
        "active": "on",
        "features": "{}",
    }
    assert finance_client.post(change_url(plan), data).status_code == 302
    plan.refresh_from_db()
    assert plan.amount_minor == 3900
    # and the change is in the plan's history, with who made it
    history = finance_client.get(reverse("admin:billing_plan_history", args=[plan.pk]))
    assert history.status_code == 200
    assert "fiona" in history.content.decode()


def test_a_subscribed_plan_has_its_price_read_only(finance_client, billing_history):
    plan = Plan.objects.get(code="basic")
    html = finance_client.get(change_url(plan)).content.decode()
    assert 'name="amount"' not in html
    assert 'name="currency"' not in html
    assert 'name="interval"' not in html
    assert "$10.00" in html
    # a posted price is ignored; the name changes through plan_update
    data = {
        "name": "Basic (renamed)",
        "amount": "1.00",
        "currency": "EUR",
        "interval": "year",
        "trial_days": "0",
        "active": "on",
        "features": "{}",
    }
    assert finance_client.post(change_url(plan), data).status_code == 302
    plan.refresh_from_db()
    assert (plan.name, plan.amount_minor, plan.currency, plan.interval) == (
        "Basic (renamed)",
        1000,
        "USD",
        "month",
    )


def test_a_refusal_the_form_could_not_see_is_a_message(
    finance_client, billing_history, monkeypatch
):
    # given the page was loaded before the plan's first subscriber (the price editable)
    plan = Plan.objects.get(code="basic")
    monkeypatch.setattr(billing_admin.PlanAdmin, "_locked", lambda self, obj: False)
    data = {
        "name": "Basic",
        "amount": "12.00",
        "currency": "USD",
        "interval": "month",
        "trial_days": "0",
        "active": "on",
        "features": "{}",
    }
    # when the price is saved, plan_update refuses (plan_immutable)
    response = finance_client.post(change_url(plan), data)
    # then the form comes back with the service's message; nothing changed
    assert response.status_code == 302
    assert response["Location"] == change_url(plan)
    (message,) = messages_of(response)
    assert message.startswith("The plan was not saved: This plan has had subscribers")
    plan.refresh_from_db()
    assert plan.amount_minor == 1000


# --- customers ------------------------------------------------------------------------------


def _customer_form(customer: BillingCustomer, **changes) -> dict:
    return {
        "name": customer.name,
        "email": customer.email,
        "payment_method": customer.payment_method,
        "test_clock": str(customer.test_clock_id or ""),
        "credits-TOTAL_FORMS": "0",
        "credits-INITIAL_FORMS": "0",
        **changes,
    }


def test_a_new_card_retries_the_past_due_invoice_at_once(finance_client, billing_history):
    customer = BillingCustomer.objects.get(customer_id="fin-i")
    open_ = billing_history.sub("fin-i").invoices.get(status="open")
    response = finance_client.post(
        change_url(customer), _customer_form(customer, payment_method="pm_card_visa")
    )
    assert response.status_code == 302
    assert f"The new payment method retried {open_.number} at once: paid." in messages_of(response)
    assert billing_history.sub("fin-i").status == "active"


def test_a_customer_with_subscriptions_keeps_its_clock(finance_client, billing_history):
    customer = BillingCustomer.objects.get(customer_id="fin-a")
    response = finance_client.post(change_url(customer), _customer_form(customer, test_clock=""))
    assert response.status_code == 302
    (message,) = messages_of(response)
    assert "test clock cannot change once it has subscriptions" in message
    customer.refresh_from_db()
    assert customer.test_clock_id == billing_history.clock.pk


# --- subscription actions -------------------------------------------------------------------


def test_cancel_at_period_end_then_resume(finance_client, billing_history):
    sub = billing_history.sub("fin-a")
    response = act(finance_client, "cancel_at_period_end", sub)
    assert landed(response) == SUBSCRIPTIONS
    assert messages_of(response) == ["fin-a (basic): cancels at the period end, 2026-04-10 12:00."]
    assert billing_history.sub("fin-a").cancel_at_period_end
    response = act(finance_client, "resume", sub)
    assert messages_of(response) == ["fin-a (basic): resumed; it renews as usual."]
    sub = billing_history.sub("fin-a")
    assert not sub.cancel_at_period_end
    assert list(sub.transitions.values_list("reason", flat=True))[-2:] == [
        "cancel_at_period_end",
        "resumed",
    ]


def test_cancel_now_and_errors_as_messages(finance_client, billing_history):
    g, f = billing_history.sub("fin-g"), billing_history.sub("fin-f")
    response = act(finance_client, "cancel_now", g, f)
    assert sorted(messages_of(response)) == [
        "fin-f (basic): already cancelled; nothing to do.",
        "fin-g (euro): cancelled now; open invoices voided.",
    ]
    assert billing_history.sub("fin-g").status == "cancelled"
    # resuming a cancelled subscription is refused by the service: an error message
    response = act(finance_client, "resume", g)
    assert response.status_code == 200
    assert messages_of(response) == ["fin-g (euro): A cancelled subscription cannot be resumed."]


def test_cancel_at_period_end_of_a_past_due_subscription_says_it_cancelled_now(
    finance_client, billing_history
):
    response = act(finance_client, "cancel_at_period_end", billing_history.sub("fin-j"))
    assert messages_of(response) == [
        "fin-j (euro): cancelled now (a past-due subscription has no paid period to end)."
    ]
    assert invoice_of(
        "fin-j", billing_reason="subscription_cycle", period_start__month=3
    ).status == ("void")


def test_retry_the_open_invoice_now(finance_client, billing_history):
    i, j, a = (billing_history.sub(c) for c in ("fin-i", "fin-j", "fin-a"))
    # given i's card works again (set without the automatic retry of a card change)
    BillingCustomer.objects.filter(customer_id="fin-i").update(payment_method="pm_card_visa")
    i_open, j_open = (i.invoices.get(status="open") for i in (i, j))
    # when finance retries all three
    response = act(finance_client, "retry_open_invoice", i, j, a)
    # then i is paid, j declined again (its schedule stays), a had nothing to retry
    assert sorted(messages_of(response)) == [
        "fin-a (basic): no open invoice to retry.",
        f"fin-i (basic): {i_open.number} paid ($10.00).",
        f"fin-j (euro): {j_open.number} declined: Your card was declined.; "
        "the next retry stays scheduled.",
    ]
    assert billing_history.sub("fin-i").status == "active"
    assert billing_history.sub("fin-j").status == "past_due"
    j_open.refresh_from_db()
    assert j_open.attempt_count == 3


def test_a_button_on_the_subscription_page_comes_back_to_it(finance_client, billing_history):
    sub = billing_history.sub("fin-a")
    response = act(finance_client, "cancel_at_period_end", sub, _next=change_url(sub))
    assert landed(response) == change_url(sub)
    html = response.content.decode()
    assert "cancels at the period end" in html
    assert 'data-action="resume"' in html
    # an outside _next is ignored
    response = act(finance_client, "resume", sub, _next="https://evil.example/")
    assert landed(response) == SUBSCRIPTIONS


# --- invoices -------------------------------------------------------------------------------


def test_the_invoice_document_lists_lines_and_formatted_totals(finance_client, billing_history):
    invoice = invoice_of("fin-k")  # the first, half off
    url = reverse("admin:billing_invoice_document", args=[invoice.pk])
    assert f'href="{url}"' in finance_client.get(change_url(invoice)).content.decode()
    response = finance_client.get(url)
    assert response.status_code == 200
    html = text(response.content.decode())
    assert "Invoice INV-000011" in html
    assert "fin-k@example.com" in html
    assert "2026-01-10 \N{EN DASH} 2026-02-10" in html
    assert "Basic Subscription 1 $10.00" in html
    assert "Discount" in html
    totals = dict(
        re.findall(
            r'data-total="(\w+)"><th scope="row" colspan="3">[^<]+</th><td class="num">'
            r"([^<]+)</td>",
            response.content.decode(),
        )
    )
    assert totals == {
        "subtotal": "$10.00",
        "discount": "-$5.00",
        "total": "$5.00",
        "paid": "$5.00",
        "due": "$0.00",
    }
    assert "Refund" in html


def test_refund_part_of_a_paid_invoice(finance_client, billing_history):
    invoice = invoice_of("fin-b", billing_reason="subscription_cycle")  # $29.00 paid
    url = reverse("admin:billing_invoice_refund", args=[invoice.pk])
    form = finance_client.get(url)
    assert form.status_code == 200
    assert "$29.00" in form.content.decode()
    response = finance_client.post(url, {"amount": "4.50", "reason": "goodwill"})
    assert response.status_code == 302
    assert response["Location"] == change_url(invoice)
    (message,) = messages_of(response)
    assert message == f"Credit note CN-000001 for $4.50 on {invoice.number}: refunded."
    invoice.refresh_from_db()
    assert invoice.amount_refunded_minor == 450
    note = CreditNote.objects.get()
    assert (note.amount_minor, note.reason, note.refunded_at is not None) == (450, "goodwill", True)
    page = text(finance_client.get(change_url(invoice)).content.decode())
    assert "CN-000001" in page
    assert "$4.50" in page


def test_refund_refusals_are_messages_and_bad_amounts_form_errors(finance_client, billing_history):
    paid = invoice_of("fin-a")  # $10.00
    url = reverse("admin:billing_invoice_refund", args=[paid.pk])
    too_much = finance_client.post(url, {"amount": "10.01"})
    assert too_much.status_code == 200
    assert messages_of(too_much) == ["Not refunded: At most $10.00 can be refunded."]
    bad = finance_client.post(url, {"amount": "ten"})
    assert bad.status_code == 200
    assert "Enter an amount as a decimal string" in bad.content.decode()
    open_ = billing_history.sub("fin-i").invoices.get(status="open")
    nothing_paid = finance_client.post(
        reverse("admin:billing_invoice_refund", args=[open_.pk]), {"amount": ""}
    )
    assert messages_of(nothing_paid) == ["Not refunded: At most $0.00 can be refunded."]
    assert not CreditNote.objects.exists()
    # in full (empty amount) works
    assert finance_client.post(url, {"amount": ""}).status_code == 302
    paid.refresh_from_db()
    assert paid.amount_refunded_minor == 1000


def test_the_refund_action_opens_the_form_for_one_invoice(finance_client, billing_history):
    invoices = reverse("admin:billing_invoice_changelist")
    a, b = invoice_of("fin-a"), invoice_of("fin-b")
    one = finance_client.post(
        invoices, {"action": "refund_selected", "_selected_action": [str(a.pk)]}
    )
    assert one["Location"] == reverse("admin:billing_invoice_refund", args=[a.pk])
    two = finance_client.post(
        invoices, {"action": "refund_selected", "_selected_action": [str(a.pk), str(b.pk)]}
    )
    assert messages_of(two) == ["Choose one invoice to refund."]


# --- dunning and the overview ---------------------------------------------------------------


def test_the_dunning_page_lists_past_due_subscriptions_and_the_amount_at_risk(
    finance_client, billing_history
):
    response = finance_client.get(DUNNING)
    assert response.status_code == 200
    html = response.content.decode()
    rows = {}
    for customer in ("fin-i", "fin-j"):
        row = html.split(f'data-customer="{customer}"', 1)[1].split("</tr>", 1)[0]
        rows[customer] = {
            col: re.search(rf'data-col="{col}">([^<]+)<', row)[1]
            for col in ("first-failure", "next-attempt", "attempts", "amount")
        }
    assert rows == {
        "fin-i": {
            "first-failure": "2026-03-10 12:00",
            "next-attempt": "2026-03-13 12:00",
            "attempts": "2",
            "amount": "$10.00",
        },
        "fin-j": {
            "first-failure": "2026-03-10 12:00",
            "next-attempt": "2026-03-13 12:00",
            "attempts": "2",
            "amount": "€20.00",
        },
    }
    page = text(html)
    assert "Past-due subscriptions 2" in page
    assert "At risk (USD) $10.00" in page
    assert "At risk (EUR) €20.00" in page
    assert "fin-e" not in html  # recovered
    # and its retry button comes back here with the outcome
    retry = act(finance_client, "retry_open_invoice", billing_history.sub("fin-j"), _next=DUNNING)
    assert landed(retry) == DUNNING
    assert "declined" in messages_of(retry)[0]


def test_the_overview_shows_the_months_numbers_and_chart_data(finance_client, billing_history):
    response = finance_client.get(OVERVIEW, {"end": "2026-04", "months": "4"})
    assert response.status_code == 200
    html = response.content.decode()
    kpis = {
        key: value
        for key, value in re.findall(
            r'data-kpi="(\w+)">\s*<h2>[^<]*</h2>\s*'
            r'<p class="billing-kpi-value">(?:<a [^>]+>)?([^<]+)',
            html,
        )
    }
    assert kpis == {
        "mrr": "€0.00 · $0.00",  # April is after the clock's time
        "new": "11",
        "churned": "3",
        "dunning_recovery": "25.0%",
        "trial_conversion": "50.0%",
        "past_due": "2",
    }
    series = json.loads(
        html.split('id="billing-series" type="application/json">', 1)[1].split("</script>", 1)[0]
    )
    assert series["labels"] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert series["mrr"] == [
        {"currency": "EUR", "data": [40.0, 40.0, 20.0, 0.0]},
        {"currency": "USD", "data": [94.0, 79.0, 69.0, 0.0]},
    ]
    assert series["new"] == [11, 0, 0, 0]
    assert series["churned"] == [1, 2, 0, 0]
    assert series["dunning"] == {
        "recovered": [0, 1, 0, 0],
        "lost": [0, 1, 0, 0],
        "open": [0, 0, 2, 0],
        "rate": [None, 50.0, 0.0, None],
    }
    assert series["trials"] == {
        "converted": [1, 0, 0, 0],
        "not_converted": [1, 0, 0, 0],
        "rate": [50.0, None, None, None],
    }
    january = html.split('data-month="2026-01"', 1)[1].split("</tr>", 1)[0]
    assert "€40.00" in january
    assert "$94.00" in january
    assert "How these numbers are counted" in html
    assert "js/Chart.min.js" in html  # served locally by django-chartjs
    assert "cdn" not in html.lower()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"end": "2026-13"}, "Enter a month as YYYY-MM"),
        ({"end": "March"}, "Enter a month as YYYY-MM"),
        ({"months": "99"}, "less than or equal to 36"),
        ({"months": "x"}, "Enter a whole number"),
    ],
)
def test_bad_overview_filters_are_form_errors(finance_client, params, error):
    response = finance_client.get(OVERVIEW, params)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "billing-series" not in response.content.decode()


def test_the_overview_defaults_to_the_last_twelve_months(finance_client):
    response = finance_client.get(OVERVIEW)
    assert response.status_code == 200
    html = response.content.decode()
    assert "No billing activity in these months." in html
    series = json.loads(
        html.split('id="billing-series" type="application/json">', 1)[1].split("</script>", 1)[0]
    )
    assert len(series["labels"]) == 12
