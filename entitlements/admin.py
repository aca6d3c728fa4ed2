"""Entitlements in the admin: features, grants (live, expired, revoked; revoke is an
action), the event history, usage and reservations (read-only: they move only through
reserve / release), and two pages (entitlements/admin_views.py for their forms and data):

- the plan x feature matrix at /admin/entitlements/matrix/: every plan's value of every
  feature on one page, one form, one save through `billing.services.plan_update`;
- a customer's page at /admin/entitlements/customer/?id=<customer id>: the effective
  entitlements with their sources, usage, reservations, grants and the event history,
  with "grant the features of plan X for N days" and a revoke per live grant.

Who (docs/entitlements-admin.md): the "entitlements" group (0002, and 0003 for grant and
revoke). The matrix is also finance's (billing/migrations/0002): viewing needs
view_feature or billing's view_plan, saving change_feature or billing's change_plan
(finance edits plans' feature maps on the plan page already). Writes go through services;
counters, states and history are read-only.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from billing import selectors as billing
from core.admin import ReadOnlyAdminMixin, ServiceSaveMixin, error_text
from core.errors import DomainError
from entitlements import admin_views, selectors, services
from entitlements.models import EntitlementEvent, Feature, Grant, Reservation, Usage

VIEW_MATRIX = ("entitlements.view_feature", "billing.view_plan")  # any of them
EDIT_MATRIX = ("entitlements.change_feature", "billing.change_plan")  # any of them
VIEW_CUSTOMER = (  # all of them
    "entitlements.view_grant",
    "entitlements.view_usage",
    "entitlements.view_reservation",
    "entitlements.view_entitlementevent",
)
ADD_GRANT = "entitlements.add_grant"
REVOKE_GRANT = "entitlements.change_grant"
TIME = "%Y-%m-%d %H:%M"
MATRIX_TITLE = "Plan \N{MULTIPLICATION SIGN} feature matrix"


def _any(user, perms: tuple[str, ...]) -> bool:
    return any(user.has_perm(p) for p in perms)


def may_view_matrix(user) -> bool:
    return _any(user, VIEW_MATRIX)


def may_edit_matrix(user) -> bool:
    return _any(user, EDIT_MATRIX)


def may_view_customer(user) -> bool:
    return user.has_perms(VIEW_CUSTOMER)


def customer_url(customer_id: str) -> str:
    return f"{reverse('admin:entitlements_customer')}?{urlencode({'id': customer_id})}"


def customer_link(customer_id: str) -> str:
    return format_html(
        '<a href="{}" class="ent-customer-link">{}</a>', customer_url(customer_id), customer_id
    )


class CustomerLinkMixin:
    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj) -> str:
        return customer_link(obj.customer_id)


# --- features ---------------------------------------------------------------------------


@admin.register(Feature)
class FeatureAdmin(ServiceSaveMixin, SimpleHistoryAdmin):
    """Features: a new one through `services.feature_create` (which moves every cached
    answer's version: answers list every feature). Key and type are fixed once made:
    plans and grants refer to the key, and a type change would reinterpret their values.
    Also the views of the matrix and customer pages (`_with_entitlements_urls`)."""

    list_display = ("key", "name", "type", "description", "live_grants")
    list_filter = ("type",)
    list_select_related = False  # no foreign keys on the list
    search_fields = ["key", "name"]
    fields = ("key", "name", "type", "description", "created_at")
    change_list_template = "admin/entitlements/feature/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return ("key", "type", "created_at") if obj is not None else ("created_at",)

    def has_delete_permission(self, request, obj=None):
        return False  # plans and grants refer to features by key

    def get_queryset(self, request):
        now = timezone.now()
        live = Q(grants__revoked_at__isnull=True) & (
            Q(grants__expires_at__isnull=True) | Q(grants__expires_at__gt=now)
        )
        return super().get_queryset(request).annotate(live_grant_count=Count("grants", filter=live))

    @admin.display(description="live grants", ordering="live_grant_count")
    def live_grants(self, obj: Feature) -> int:
        return getattr(obj, "live_grant_count", 0)

    def save_via_service(self, request, obj, form, change):
        if not change:
            data = form.cleaned_data
            return services.feature_create(
                key=data["key"],
                name=data["name"],
                type=data["type"],
                description=data.get("description", ""),
            )
        # Name and description only (key and type are read-only): labels for people,
        # in no cached answer, and there is no service to change them.
        obj.save(update_fields=[n for n in ("name", "description") if n in form.changed_data])
        return obj

    def changelist_view(self, request, extra_context=None):
        extra = {
            "can_view_matrix": may_view_matrix(request.user),
            "can_view_customer": may_view_customer(request.user),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    # --- pages (their URLs: _with_entitlements_urls) ---

    def _page(self, request, template: str, title: str, extra: dict):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            **extra,
        }
        return TemplateResponse(request, template, context)

    def matrix_view(self, request):
        """GET: the matrix; POST: save every changed plan through plan_update (errors as
        messages over the form as sent, nothing saved)."""
        if not may_view_matrix(request.user):
            raise PermissionDenied
        can_edit = may_edit_matrix(request.user)
        plans = admin_views.matrix_plans()
        features = selectors.features_all()
        if request.method == "POST":
            if not can_edit:
                raise PermissionDenied
            form = admin_views.MatrixForm(request.POST, plans=plans, features=features)
            done = self._matrix_save(request, form)
            if done:
                return HttpResponseRedirect(reverse("admin:entitlements_matrix"))
        else:
            form = admin_views.MatrixForm(plans=plans, features=features)
        return self._page(
            request,
            "admin/entitlements/matrix.html",
            MATRIX_TITLE,
            {
                "form": form,
                "rows": admin_views.matrix_rows(form),
                "features": features,
                "can_edit": can_edit,
                "can_view_customer": may_view_customer(request.user),
            },
        )

    def _matrix_save(self, request, form) -> bool:
        """True when the page should be shown afresh (saved, or stale)."""
        if not form.is_valid():
            stale = form.has_error("__all__", "stale")
            for text in form.error_texts():
                self.message_user(request, f"Not saved: {text}", messages.ERROR)
            return stale
        try:
            changes = admin_views.matrix_save(form)
        except DomainError as exc:
            self.message_user(request, f"Not saved: {error_text(exc)}", messages.ERROR)
            return False
        if not changes:
            self.message_user(request, "Nothing changed.", messages.INFO)
        else:
            self.message_user(
                request,
                f"Saved {len(changes)} plan(s): " + "; ".join(c.text() for c in changes) + ".",
                messages.SUCCESS,
            )
        return True

    def customer_view(self, request):
        """GET ?id=: the customer's entitlements; POST op=grant | revoke, then back here."""
        if not may_view_customer(request.user):
            raise PermissionDenied
        plans = list(billing.plans_active())
        grant_form = None
        if request.method == "POST":
            customer_id = (request.POST.get("customer_id") or "").strip()
            if not customer_id or len(customer_id) > 100:
                return HttpResponseBadRequest("No customer id.")
            op = request.POST.get("op")
            if op == "grant":
                grant_form = self._grant(request, customer_id, plans)
                if grant_form is None:
                    return HttpResponseRedirect(customer_url(customer_id))
            elif op == "revoke":
                self._revoke(request, customer_id)
                return HttpResponseRedirect(customer_url(customer_id))
            else:
                return HttpResponseBadRequest("Unknown operation.")
            search = admin_views.CustomerForm({"id": customer_id})
        else:
            search = admin_views.CustomerForm(request.GET if "id" in request.GET else None)
        customer_id = search.cleaned_data["id"].strip() if search.is_valid() else ""
        data = admin_views.customer_data(customer_id) if customer_id else None
        matches = admin_views.customer_matches(customer_id)
        can_grant = request.user.has_perm(ADD_GRANT)
        if grant_form is None and can_grant:
            grant_form = admin_views.PlanGrantForm(plans=plans)
        return self._page(
            request,
            "admin/entitlements/customer.html",
            "Customer entitlements",
            {
                "subtitle": customer_id or None,
                "search": search,
                "data": data,
                "matches": [m for m in matches if m != customer_id],
                "grant_form": grant_form,
                "can_grant": can_grant,
                "can_revoke": request.user.has_perm(REVOKE_GRANT),
                "can_view_matrix": may_view_matrix(request.user),
                "can_view_billing_customer": request.user.has_perm("billing.view_billingcustomer"),
                "list_query": urlencode({"customer_id": customer_id}),
            },
        )

    def _grant(self, request, customer_id: str, plans: list):
        """Run the grant form; None when done (a message says how), else the bound form
        with its errors."""
        if not request.user.has_perm(ADD_GRANT):
            raise PermissionDenied
        form = admin_views.PlanGrantForm(request.POST, plans=plans)
        if not form.is_valid():
            self.message_user(request, "Nothing granted: correct the form.", messages.ERROR)
            return form
        plan = form.plans[form.cleaned_data["plan"]]
        try:
            grants, expires_at = admin_views.plan_grant(
                customer_id=customer_id,
                plan=plan,
                days=form.cleaned_data["days"],
                reason=form.cleaned_data["reason"],
                by=request.user.get_username(),
            )
        except DomainError as exc:
            self.message_user(request, f"Nothing granted: {error_text(exc)}", messages.ERROR)
            return form
        if not grants:
            self.message_user(
                request, f"Plan {plan.code} enables no feature: nothing granted.", messages.WARNING
            )
        else:
            granted = ", ".join(
                f"{g.feature.key} ({admin_views.value_text(g.feature.type, g.value)})"
                for g in grants
            )
            self.message_user(
                request,
                f"Granted {customer_id} the features of {plan.name} until "
                f"{expires_at.strftime(TIME)}: {granted}.",
                messages.SUCCESS,
            )
        return None

    def _revoke(self, request, customer_id: str) -> None:
        if not request.user.has_perm(REVOKE_GRANT):
            raise PermissionDenied
        try:
            grant = admin_views.grant_revoke(
                customer_id=customer_id,
                grant_id=request.POST.get("grant_id") or "",
                by=request.user.get_username(),
            )
        except DomainError as exc:
            self.message_user(request, f"Not revoked: {error_text(exc)}", messages.ERROR)
            return
        self.message_user(
            request, f"Revoked the grant of {grant.feature.key} to {customer_id}.", messages.SUCCESS
        )


# --- grants -----------------------------------------------------------------------------


class GrantStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "live"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Grant)
class GrantAdmin(CustomerLinkMixin, admin.ModelAdmin):
    """Grants, read-only: made on the customer page (or the API) through
    services.grant_create; revoked by the action (services.grant_revoke). The state here
    is by the server's time; the customer page uses the customer's (a test clock's)."""

    list_display = (
        "customer_link",
        "feature",
        "value_text",
        "state",
        "expires_at",
        "reason",
        "created_by",
        "created_at",
        "revoked_at",
    )
    list_filter = (GrantStateFilter, "feature", "created_at")
    list_select_related = ("feature",)
    search_fields = ["customer_id", "reason", "created_by"]
    ordering = ("-created_at",)
    fields = (
        "id",
        "customer_link",
        "feature",
        "value_text",
        "state",
        "reason",
        "expires_at",
        "created_by",
        "created_at",
        "revoked_at",
        "expiry_recorded_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request):
        return False  # grants are made on the customer page or by the API

    def has_change_permission(self, request, obj=None):
        return False  # nothing to edit; revoking is the action

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm(REVOKE_GRANT)

    @admin.display(description="value")
    def value_text(self, obj: Grant) -> str:
        return admin_views.value_text(obj.feature.type, obj.value)

    @admin.display(description="state")
    def state(self, obj: Grant) -> str:
        return admin_views.grant_state(obj, timezone.now())

    @admin.action(description="Revoke selected grants", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        done = 0
        for grant in queryset.select_related("feature"):
            if grant.revoked_at is not None:
                continue
            try:
                admin_views.grant_revoke(
                    customer_id=grant.customer_id,
                    grant_id=str(grant.pk),
                    by=request.user.get_username(),
                )
            except DomainError as exc:
                self.message_user(
                    request, f"{grant}: not revoked: {error_text(exc)}", messages.ERROR
                )
                continue
            done += 1
        self.message_user(request, f"Revoked {done} grant(s).", messages.SUCCESS)


# --- read-only rows ---------------------------------------------------------------------


class _ReadOnly(CustomerLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


@admin.register(EntitlementEvent)
class EntitlementEventAdmin(_ReadOnly):
    list_display = ("occurred_at", "customer_link", "kind", "feature_key", "detail_text")
    list_filter = ("kind", "occurred_at")
    list_select_related = False  # no foreign key is shown on the list
    search_fields = ["customer_id", "feature_key", "source_event"]
    ordering = ("-occurred_at", "-id")

    @admin.display(description="detail")
    def detail_text(self, obj: EntitlementEvent) -> str:
        return admin_views.detail_text(obj.detail)


@admin.register(Usage)
class UsageAdmin(_ReadOnly):
    list_display = ("customer_link", "feature", "used", "updated_at")
    list_select_related = ("feature",)
    list_filter = ("feature",)
    search_fields = ["customer_id"]


@admin.register(Reservation)
class ReservationAdmin(_ReadOnly):
    list_display = ("customer_link", "feature", "resource_id", "quantity", "created_at")
    list_select_related = ("feature",)
    list_filter = ("feature", "created_at")
    search_fields = ["customer_id", "resource_id"]


# --- the pages' URLs and index entries ----------------------------------------------------

# (route under /admin/entitlements/, URL name, label, object name, who may see it)
PAGES = (
    ("matrix/", "entitlements_matrix", MATRIX_TITLE, "PlanFeatureMatrix"),
    ("customer/", "entitlements_customer", "Customer entitlements", "CustomerEntitlements"),
)
_MAY_SEE = {"entitlements_matrix": may_view_matrix, "entitlements_customer": may_view_customer}


def _with_entitlements_urls(get_urls):
    """Wrap the site's get_urls: the two pages, before the app index's own patterns."""

    def urls():
        features = admin.site._registry[Feature]
        views = {
            "entitlements_matrix": features.matrix_view,
            "entitlements_customer": features.customer_view,
        }
        return [
            *(
                path(f"entitlements/{route}", admin.site.admin_view(views[name]), name=name)
                for route, name, _, _ in PAGES
            ),
            *get_urls(),
        ]

    urls.__dict__.update(getattr(get_urls, "__dict__", {}))  # other apps' markers
    urls.entitlements_pages = True
    return urls


def _entry(name: str, label: str, object_name: str) -> dict:
    return {
        "name": label,
        "object_name": object_name,
        "perms": {"view": True},
        "admin_url": reverse(f"admin:{name}", current_app=admin.site.name),
        "add_url": None,
        "view_only": True,
    }


def _with_entitlements_pages(get_app_list):
    """Wrap the site's get_app_list: the pages first in the Entitlements section for who
    may see them; finance, who has no Entitlements section, finds the matrix under
    Billing."""

    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        user = request.user
        entries = [
            _entry(name, label, object_name)
            for _, name, label, object_name in PAGES
            if _MAY_SEE[name](user)
        ]
        if not entries:
            return apps
        by_label = {app["app_label"]: app for app in apps}
        if "entitlements" in by_label:
            by_label["entitlements"]["models"][:0] = entries
        elif "billing" in by_label and may_view_matrix(user):
            by_label["billing"]["models"].append(_entry(*PAGES[0][1:]))
        return apps

    app_list.__dict__.update(getattr(get_app_list, "__dict__", {}))
    app_list.entitlements_pages = True
    return app_list


if not getattr(admin.site.get_urls, "entitlements_pages", False):
    admin.site.get_urls = _with_entitlements_urls(admin.site.get_urls)  # type: ignore[method-assign]
if not getattr(admin.site.get_app_list, "entitlements_pages", False):
    admin.site.get_app_list = _with_entitlements_pages(admin.site.get_app_list)  # type: ignore[method-assign]
