"""Entitlements for the monolith's own code:

- `requires_feature("sso")`: a DRF permission class for a view (403 feature_not_enabled,
  or limit_reached for a limit with nothing left, with the upgrade in the message);
- `require(customer_id, "sso")`: the same check for a service, raising `Denied`;
- `services.reserving(...)`: a context manager that reserves a limit and gives it back
  if the work fails (docs/entitlements.md, "create a project" done right).

Checks read the tiered cache; a denial is confirmed from PostgreSQL first (services.check).
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.permissions import BasePermission

from core.errors import Forbidden
from entitlements import services

CustomerOf = Callable[[object, object], str | None]


def _customer_of(request, view) -> str | None:
    """An end customer's own id (a JWT), else the view's `customer_id` URL argument."""
    principal = getattr(request, "user", None)
    if getattr(principal, "kind", None) == "customer":
        return principal.customer_id  # type: ignore[union-attr]
    return getattr(view, "kwargs", {}).get("customer_id")


class FeatureDenied(Forbidden):
    """403 with the entitlements reason code (feature_not_enabled / limit_reached)."""

    def __init__(self, decision: services.Decision):
        upgrade = decision.upgrade
        hint = f" Upgrade to {upgrade['name']} ({upgrade['plan']})." if upgrade else ""
        super().__init__(decision.reason, decision.message + hint)
        self.decision = decision


def require(customer_id: str, feature_key: str, quantity: int = 1) -> services.Decision:
    """Raise FeatureDenied unless the customer may use `quantity` of the feature now."""
    decision = services.check(customer_id=customer_id, feature_key=feature_key, quantity=quantity)
    if not decision.allowed:
        raise FeatureDenied(decision)
    return decision


def requires_feature(
    feature_key: str, *, customer: CustomerOf = _customer_of
) -> type[BasePermission]:
    """`permission_classes = [HasStorefrontScope, requires_feature("sso")]`. `customer`
    finds the customer a request is about (default: the token's subject, or the URL's
    customer_id); a request without one is refused."""

    class RequiresFeature(BasePermission):
        def has_permission(self, request, view) -> bool:
            customer_id = customer(request, view)
            if not customer_id:
                raise Forbidden("forbidden", "This needs a customer.")
            require(customer_id, feature_key)
            return True

    RequiresFeature.__name__ = f"RequiresFeature_{feature_key}"
    return RequiresFeature
