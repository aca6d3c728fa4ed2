from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from rest_framework_api_key.models import AbstractAPIKey


def history_user(instance=None, request=None, **kwargs):
    """Who made a change, for the audit trail (simple_history's get_user): the admin's staff
    user. API-key callers are not users (DRF puts its principal on the request), so their
    changes have no user."""
    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


class Scope(models.TextChoices):
    STOREFRONT = "storefront", "Storefront"
    ADMIN = "admin", "Admin"


class ApiKey(AbstractAPIKey):
    """A server credential (`Authorization: Api-Key <key>`), stored hashed, with scopes."""

    scopes = ArrayField(models.CharField(max_length=20, choices=Scope.choices), default=list)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


class IdempotencyRecord(models.Model):
    """The first response to a mutating call, replayed for the same `Idempotency-Key`.

    Keys are scoped by the caller (`principal`) so two clients can never collide. A row in
    state `started` marks a request in flight: a concurrent duplicate waits for it.
    """

    class State(models.TextChoices):
        STARTED = "started"
        DONE = "done"

    principal = models.CharField(max_length=200)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=10, choices=State.choices, default=State.STARTED)
    response_status = models.PositiveSmallIntegerField(null=True)
    # Text, not jsonb: a replay must return the first response's keys in the same order.
    response_body = models.TextField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.principal}:{self.key}"


class IdempotentCreation(models.Model):
    """A row an API call creates at most once per `Idempotency-Key` (campaigns, code
    batches): the key, scoped by its caller, and the request's fingerprint
    (core.idempotency) are written with the row, so a retry whose stored response was lost
    (a crash between this commit and the response) finds this row, never makes another.
    core.idempotency.create_once does the lookup and settles concurrent first attempts.

    A concrete model's own Meta must list `*IdempotentCreation.Meta.constraints` with its
    other constraints (a Meta that sets `constraints` replaces the inherited list); the
    unique constraint is named "<model>_idempotency_key_unique"."""

    idempotency_principal = models.CharField(
        max_length=200, blank=True, default="", db_default="", editable=False
    )
    idempotency_key = models.CharField(
        max_length=255, blank=True, default="", db_default="", editable=False
    )
    idempotency_fingerprint = models.CharField(
        max_length=64, blank=True, default="", db_default="", editable=False
    )

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_principal", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="%(class)s_idempotency_key_unique",
            ),
        ]
