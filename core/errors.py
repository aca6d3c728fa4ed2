"""One error body for every 4xx/5xx (API.md): {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(exceptions.APIException):
    """An error the service layer raises on purpose, with a stable code.

    `retryable`: the same request may succeed if simply sent again (a race was lost);
    the idempotency layer does not keep such an answer, so the retry runs."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int = 400,
        fields: dict | None = None,
        headers: dict | None = None,
        retryable: bool = False,
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        self.retryable = retryable


class Conflict(ApiError):
    def __init__(self, code: str, message: str, **kw):
        super().__init__(code, message, status_code=409, **kw)


UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"


def _sql_cause(exc: DatabaseError) -> tuple[str | None, str | None]:
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
    constraint is a `400` on the field `fields` maps its name to; a value the column
    cannot hold (out of range, too long) a `400`; a unique constraint a `409`. Use it
    outside the service's transaction, which has rolled back by then."""
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
        raise ApiError(
            "invalid_request", "Invalid input.", fields={field: ["This value is not allowed here."]}
        ) from None
    except DataError as exc:
        logger.error("database refused a validated value: %s", exc)
        raise ApiError(
            "invalid_request",
            "Invalid input.",
            fields={"non_field_errors": ["A value is out of range or too long."]},
        ) from None


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def json_error(
    status_code: int,
    code: str | None = None,
    message: str | None = None,
    fields: dict | None = None,
    headers: dict | None = None,
) -> JsonResponse:
    response = JsonResponse(
        error_body(
            code or _STATUS_CODES.get(status_code, "error"), message or "Request failed.", fields
        ),
        status=status_code,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def database_unavailable() -> JsonResponse:
    return json_error(
        503,
        "database_unavailable",
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": "5"},
    )


def api_exception_handler(exc, context):
    """DRF exception handler: every exception becomes the API.md error body."""
    if isinstance(exc, ApiError):
        return Response(
            error_body(exc.error_code, exc.message, exc.fields),
            status=exc.status_code,
            headers=exc.headers,
        )
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return Response(error_body("invalid_request", "Invalid input.", fields), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        return Response(
            error_body("database_unavailable", "The database is unavailable; retry shortly."),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(error_body("invalid_request", "Invalid input.", fields), status=400)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("malformed_json", str(exc.detail)), status=400)
    if isinstance(exc, exceptions.Throttled):
        headers = {"Retry-After": str(int(exc.wait or 1))}
        message = str(exc.detail) if exc.detail else "Too many requests."
        return Response(error_body("rate_limited", message), status=429, headers=headers)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        code = _STATUS_CODES.get(exc.status_code, "error")
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
        return Response(
            error_body("internal_error", "Internal error."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return None  # unexpected: Django's handler500 renders the JSON 500 body


# --- Django-level handlers (non-DRF paths and errors raised outside views) ---------------
# API clients get the JSON error body; people in the admin keep Django's HTML pages.


def _wants_html(request) -> bool:
    return request.path.startswith("/admin/")


def handler400(request, exception=None):
    if _wants_html(request):
        return defaults.bad_request(request, exception)
    return json_error(400, message="Bad request.")


def handler403(request, exception=None):
    if _wants_html(request):
        return defaults.permission_denied(request, exception)
    return json_error(403, message="Forbidden.")


def handler404(request, exception=None):
    if _wants_html(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, message="Not found.")


def handler500(request):
    if _wants_html(request):
        return defaults.server_error(request)
    return json_error(500, message="Internal error.")
