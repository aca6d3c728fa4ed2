"""Domain errors: what a service raises when a business rule refuses a call.

Plain exceptions, no HTTP: a stable `code` (API.md's reason codes), a message for people,
optional `fields` (input errors by field). The family (`kind`) says what went wrong; the
one exception handler (core.api.errors) maps each family to its HTTP status, so services,
Celery tasks and the admin raise and catch the same errors. Bad input by field may also be
Django's own `ValidationError` (plain Django, used by model validation and the admin);
the handler maps it to the same `400 invalid_request` body.

Also here: recognising the database's refusals (unique / check violations) as input errors.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import ClassVar

from django.db import DataError, IntegrityError

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal with a stable code. Subclasses name the family; raise those.

    `retryable`: the same request may succeed if simply sent again (a race was lost, or
    another call with the key is still running); the idempotency layer does not keep such
    an answer. `retry_after`: seconds a client should wait before retrying, when known."""

    kind: ClassVar[str] = "invalid"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict | None = None,
        retryable: bool = False,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class Invalid(DomainError):
    """The input cannot be served as sent (400)."""

    kind = "invalid"


class Forbidden(DomainError):
    """The caller may not do this (403)."""

    kind = "forbidden"


class NotFound(DomainError):
    """The thing the call names does not exist for this caller (404)."""

    kind = "not_found"


class Conflict(DomainError):
    """The call conflicts with the current state (409)."""

    kind = "conflict"


class Unprocessable(DomainError):
    """A business rule refuses a well-formed call (422): billing's and referrals' reasons,
    a coupon reason when billing redeems a coupon."""

    kind = "unprocessable"


class PaymentRequired(DomainError):
    """The charge the call needed was declined (402 payment_declined)."""

    kind = "payment_required"


class Unavailable(DomainError):
    """A dependency did not answer; the outcome is settled later (503, retryable)."""

    kind = "unavailable"


UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"


def _sql_cause(exc: Exception) -> tuple[str | None, str | None]:
    """(SQLSTATE, constraint name) of a database error (psycopg's diagnostics)."""
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(cause, "sqlstate", None), getattr(diag, "constraint_name", None)


def is_unique_violation(exc: IntegrityError) -> bool:
    return _sql_cause(exc)[0] == UNIQUE_VIOLATION


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError reports, if any."""
    return _sql_cause(exc)[1]


@contextlib.contextmanager
def database_input_errors(fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """The last line of defence around a write of validated input: what the validation
    missed and the database refused is the client's bad input, never a 500. A check
    constraint is `Invalid` on the field `fields` maps its name to; a value the column
    cannot hold (out of range, too long) `Invalid`; a unique constraint a `Conflict`. Use
    it outside the service's transaction, which has rolled back by then."""
    try:
        yield
    except IntegrityError as exc:
        state, constraint = _sql_cause(exc)
        if state == UNIQUE_VIOLATION:
            logger.warning("unique violation on %s", constraint)
            raise Conflict("conflict", "The request conflicts with stored data.") from None
        if state != CHECK_VIOLATION:
            raise
        logger.error("check constraint %s violated by validated input", constraint)
        field = (fields or {}).get(constraint or "", "non_field_errors")
        raise Invalid(
            "invalid_request", "Invalid input.", fields={field: ["This value is not allowed here."]}
        ) from None
    except DataError as exc:
        logger.error("database refused a validated value: %s", exc)
        raise Invalid(
            "invalid_request",
            "Invalid input.",
            fields={"non_field_errors": ["A value is out of range or too long."]},
        ) from None
