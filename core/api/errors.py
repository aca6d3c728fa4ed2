"""The one error body for every 4xx/5xx (API.md): {"error": {"code", "message", "fields"}},
and the one place that maps exceptions to it: domain errors (core.errors) by family, DRF's
and Django's own exceptions, database outages."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.errors import DomainError

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    402: "payment_required",
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

# A domain error's family -> its HTTP status.
KIND_STATUS = {
    "invalid": 400,
    "payment_required": 402,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "unprocessable": 422,
    "unavailable": 503,
}


def domain_error_response(exc: DomainError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return Response(
        error_body(exc.code, exc.message, exc.fields),
        status=KIND_STATUS[exc.kind],
        headers=headers,
    )


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
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
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
