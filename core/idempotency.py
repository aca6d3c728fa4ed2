"""`Idempotency-Key` for mutating API calls (API.md, SPEC rule 3), as one decorator.

The first request with a key runs and its response is stored; a replay gets the stored
response with `Idempotent-Replayed: true`; the same key with another body is `409`.
A duplicate that arrives while the first is still running waits for it (up to
IDEMPOTENCY_WAIT_SECONDS) and then replays, or gets `409 idempotency_in_progress`.
Every response below 500 is stored, including deliberate 4xx errors, except answers
that a plain retry may change: server errors, 429s and retryable conflicts (a lost race
such as `promotions_changed`; DomainError.retryable) run again on retry. The services behind
these views are themselves protected by unique constraints (coupon + order), so even a
crash between the service's commit and the record's update cannot apply anything twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from core.errors import Conflict, DomainError, Invalid, violated_constraint
from core.models import IdempotencyRecord, IdempotentCreation

M = TypeVar("M", bound=IdempotentCreation)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def fingerprint(method: str, path: str, data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def idempotent(*, required: bool):
    """Decorate an APIView method. `required=True` makes a missing header a `400`."""

    def decorator(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get(HEADER, "").strip()
            if not key:
                if required:
                    raise Invalid(
                        "idempotency_key_required",
                        f"The {HEADER} header is required for this call.",
                        fields={HEADER: ["This header is required."]},
                    )
                return view_method(self, request, *args, **kwargs)
            if len(key) > 255:
                raise Invalid(
                    "invalid_request",
                    f"{HEADER} is too long.",
                    fields={HEADER: ["At most 255 characters."]},
                )
            record, replay = _begin(request, key)
            if replay is not None:
                return replay
            try:
                response = view_method(self, request, *args, **kwargs)
            except (APIException, DomainError) as exc:
                # A deliberate 4xx (bad input, a conflict, a 404) is the first response too,
                # unless it says a plain retry may succeed.
                response = self.handle_exception(exc)
                if getattr(exc, "retryable", False):
                    IdempotencyRecord.objects.filter(pk=record.pk).delete()
                    return response
            except BaseException:
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
                raise
            _finish(record, response)
            return response

        return wrapper

    return decorator


def _begin(request, key: str) -> tuple[IdempotencyRecord, Response | None]:
    fp = fingerprint(request.method, request.path, request.data)
    record = _claim(request.user.ident, key, fp, request.method, request.path)
    if record is not None:
        return record, None
    record = IdempotencyRecord.objects.get(principal=request.user.ident, key=key)
    if record.fingerprint != fp:
        raise Conflict(
            "idempotency_key_reused", "This Idempotency-Key was used with a different request."
        )
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    while record.state == IdempotencyRecord.State.STARTED:
        stale_after = timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
        if record.updated_at < timezone.now() - stale_after:
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk,
                state=IdempotencyRecord.State.STARTED,
                updated_at=record.updated_at,
            ).update(updated_at=timezone.now())
            if taken:
                return record, None
        if time.monotonic() >= deadline:
            raise Conflict(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed.",
                retryable=True,
                retry_after=1,
            )
        time.sleep(0.05)
        try:
            record.refresh_from_db()
        except IdempotencyRecord.DoesNotExist:
            # The first attempt failed and was discarded: run this one instead.
            return _begin(request, key)
    body = json.loads(record.response_body) if record.response_body is not None else None
    response = Response(body, status=record.response_status)
    response[REPLAYED_HEADER] = "true"
    return record, response


_CLAIM_SQL = """
INSERT INTO core_idempotencyrecord (principal, key, fingerprint, method, path, state,
                                    created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, 'started', now(), now())
ON CONFLICT (principal, key) DO NOTHING
RETURNING id, updated_at
"""


def _claim(principal: str, key: str, fp: str, method: str, path: str):
    """Insert the record if the key is new (one round trip); None if it already exists."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [principal, key, fp, method, path])
        row = cursor.fetchone()
    if row is None:
        return None
    return IdempotencyRecord(
        id=row[0],
        principal=principal,
        key=key,
        fingerprint=fp,
        method=method,
        path=path,
        updated_at=row[1],
    )


def _finish(record: IdempotencyRecord, response) -> None:
    # Not kept: a 5xx (may have done nothing) and a 429 (refused before doing anything);
    # a retry with the same key after Retry-After must run, not replay the refusal.
    if response.status_code >= 500 or response.status_code == 429:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE,
        response_status=response.status_code,
        response_body=json.dumps(getattr(response, "data", None), cls=DjangoJSONEncoder),
        updated_at=timezone.now(),
    )


def purge_expired() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- rows created once per key (core.models.IdempotentCreation) ------------------------


def _reused() -> Conflict:
    return Conflict(
        "idempotency_key_reused", "This Idempotency-Key was used with a different request."
    )


def _created_for_key(queryset: models.QuerySet[M], scope: dict, fingerprint: str) -> M | None:
    row = queryset.filter(**scope).first()
    if row is not None and row.idempotency_fingerprint != fingerprint:
        raise _reused()
    return row


def create_once(
    queryset: models.QuerySet[M],
    *,
    principal: str,
    key: str,
    fingerprint: str,
    create: Callable[[dict], M],
) -> tuple[M, bool]:
    """Create a row of an IdempotentCreation model at most once per (principal, key):
    (the row, whether this call created it).

    With a `key`, the row this caller already created with it is returned, found through
    `queryset` (its model's manager, or a narrower queryset such as one deferring big
    columns) before anything else runs, so a retry gets its row even where the request
    would no longer validate; the same key with another request (`fingerprint`) is 409
    idempotency_key_reused. Otherwise `create(fields)` runs in a savepoint, with `fields`
    the idempotency columns to write with the row (it validates, then saves); the unique
    constraint "<model>_idempotency_key_unique" decides between concurrent first
    attempts: the loser's savepoint (the row and whatever `create` wrote with it) is
    rolled back and the winner's row returned. Without a key every call creates.

    Call it inside the caller's transaction (the services are @transaction.atomic)."""
    scope = {"idempotency_principal": principal, "idempotency_key": key}
    if key:
        earlier = _created_for_key(queryset, scope, fingerprint)
        if earlier is not None:
            return earlier, False
    fields = {**scope, "idempotency_fingerprint": fingerprint if key else ""}
    constraint = f"{queryset.model._meta.model_name}_idempotency_key_unique"
    try:
        with transaction.atomic():
            return create(fields), True
    except IntegrityError as exc:  # a concurrent first attempt with this key committed
        if violated_constraint(exc) != constraint:
            raise
        existing = _created_for_key(queryset, scope, fingerprint)
        if existing is None:  # the committed row the insert collided with was deleted since
            raise
        return existing, False
