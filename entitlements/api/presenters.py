"""Response bodies of the entitlements API (API.md "Entitlements")."""

from __future__ import annotations

from django.utils import timezone

from entitlements import engine
from entitlements.models import EntitlementEvent, Grant
from entitlements.selectors import Entitlements
from entitlements.services import Decision


def _iso(moment):
    return moment.isoformat() if moment is not None else None


def feature_body(feature) -> dict:
    return {
        "key": feature.key,
        "name": feature.name,
        "type": feature.type,
        "description": feature.description,
    }


def state_body(state: engine.FeatureState) -> dict:
    return {
        "type": state.type,
        "enabled": state.enabled,
        "limit": state.limit,
        "used": state.used,
        "remaining": state.remaining,
        "source": state.source,
        "expires_at": _iso(state.expires_at),
    }


def entitlements_body(ents: Entitlements) -> dict:
    return {
        "customer_id": ents.customer_id,
        "plan": ents.plan,
        "subscription_status": ents.subscription_status,
        "features": {key: state_body(state) for key, state in sorted(ents.features.items())},
        "version": ents.version,
    }


def decision_body(decision: Decision) -> dict:
    body: dict = {
        "allowed": decision.allowed,
        "feature": decision.feature,
        "limit": decision.limit,
        "used": decision.used,
        "remaining": decision.remaining,
    }
    if not decision.allowed:
        body.update(reason=decision.reason, message=decision.message, upgrade=decision.upgrade)
    return body


def grant_status(grant: Grant) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    if grant.expires_at is not None and grant.expires_at <= timezone.now():
        return "expired"
    return "active"


def grant_body(grant: Grant) -> dict:
    return {
        "id": str(grant.pk),
        "customer_id": grant.customer_id,
        "feature": grant.feature.key,
        "value": grant.value,
        "expires_at": _iso(grant.expires_at),
        "reason": grant.reason,
        "status": grant_status(grant),
        "created_at": _iso(grant.created_at),
        "revoked_at": _iso(grant.revoked_at),
    }


def event_body(event: EntitlementEvent) -> dict:
    return {
        "id": event.pk,
        "kind": event.kind,
        "feature": event.feature_key or None,
        "grant_id": str(event.grant_id) if event.grant_id else None,
        "detail": event.detail,
        "occurred_at": _iso(event.occurred_at),
    }
