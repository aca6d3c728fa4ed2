"""Entitlements' input serializers and the output shapes of API.md's "Entitlements"
section (the outputs document the schema; bodies are built in presenters.py)."""

from __future__ import annotations

from rest_framework import serializers

from core.api.fields import TextField
from entitlements.models import FeatureType

KEY = r"^[a-z][a-z0-9_]{0,49}$"
MAX_QUANTITY = 1_000_000
MAX_USAGE_EVENTS = 1_000


class FeatureIn(serializers.Serializer):
    key = serializers.RegexField(
        KEY, max_length=50, error_messages={"invalid": "Lower-case letters, digits, underscores."}
    )
    name = TextField(max_length=100)
    type = serializers.ChoiceField(choices=FeatureType.choices)
    description = TextField(max_length=300, required=False, default="", allow_blank=True)

    class Meta:
        ref_name = "EntitlementFeatureIn"


class FeatureOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()

    class Meta:
        ref_name = "EntitlementFeatureOut"


class FeatureListOut(serializers.Serializer):
    results = FeatureOut(many=True)

    class Meta:
        ref_name = "EntitlementFeatureListOut"


class CheckIn(serializers.Serializer):
    feature = TextField(max_length=50)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)

    class Meta:
        ref_name = "EntitlementCheckIn"


class ReserveIn(CheckIn):
    resource_id = TextField(max_length=200)

    class Meta:
        ref_name = "EntitlementReserveIn"


class ReleaseIn(serializers.Serializer):
    feature = TextField(max_length=50)
    resource_id = TextField(max_length=200)

    class Meta:
        ref_name = "EntitlementReleaseIn"


class UpgradeOut(serializers.Serializer):
    plan = serializers.CharField()
    name = serializers.CharField()
    limit = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "EntitlementUpgradeOut"


class DecisionOut(serializers.Serializer):
    allowed = serializers.BooleanField()
    feature = serializers.CharField()
    limit = serializers.IntegerField(allow_null=True)
    used = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(required=False)
    message = serializers.CharField(required=False)
    upgrade = UpgradeOut(required=False, allow_null=True)

    class Meta:
        ref_name = "EntitlementDecisionOut"


class FeatureStateOut(serializers.Serializer):
    type = serializers.CharField()
    enabled = serializers.BooleanField()
    limit = serializers.IntegerField(allow_null=True)
    used = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True)
    source = serializers.ChoiceField(choices=["plan", "grant", "trial", "default"])  # type: ignore[assignment]
    expires_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "EntitlementFeatureStateOut"


class EntitlementsOut(serializers.Serializer):
    customer_id = serializers.CharField()
    plan = serializers.CharField(allow_null=True)
    subscription_status = serializers.CharField(allow_null=True)
    features = serializers.DictField(child=FeatureStateOut())
    version = serializers.IntegerField()

    class Meta:
        ref_name = "EntitlementsOut"


class UsageEventIn(serializers.Serializer):
    id = TextField(max_length=200)
    customer_id = TextField(max_length=100)
    feature = TextField(max_length=50)
    quantity = serializers.IntegerField(min_value=0, max_value=10**12, default=1)
    timestamp = serializers.DateTimeField()

    class Meta:
        ref_name = "EntitlementUsageEventIn"


class UsageIn(serializers.Serializer):
    events = UsageEventIn(many=True, allow_empty=False, max_length=MAX_USAGE_EVENTS)  # type: ignore[call-arg]

    class Meta:
        ref_name = "EntitlementUsageIn"


class UsageOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()

    class Meta:
        ref_name = "EntitlementUsageOut"


class GrantIn(serializers.Serializer):
    feature = TextField(max_length=50)
    value = serializers.JSONField(
        allow_null=True, help_text="true, a whole-number limit, or null (unlimited)."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    reason = TextField(max_length=200, required=False, default="", allow_blank=True)

    class Meta:
        ref_name = "EntitlementGrantIn"


class GrantRevokeIn(serializers.Serializer):
    reason = TextField(max_length=200, required=False, default="", allow_blank=True)

    class Meta:
        ref_name = "EntitlementGrantRevokeIn"


class GrantOut(serializers.Serializer):
    id = serializers.UUIDField()
    customer_id = serializers.CharField()
    feature = serializers.CharField()
    value = serializers.JSONField()
    expires_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "revoked", "expired"])
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "EntitlementGrantOut"


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    feature = serializers.CharField(allow_null=True)
    grant_id = serializers.UUIDField(allow_null=True)
    detail = serializers.DictField()
    occurred_at = serializers.DateTimeField()

    class Meta:
        ref_name = "EntitlementEventOut"


class EventListOut(serializers.Serializer):
    results = EventOut(many=True)

    class Meta:
        ref_name = "EntitlementEventListOut"
