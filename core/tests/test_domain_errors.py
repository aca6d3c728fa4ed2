"""Services raise plain domain errors; the one handler (core.api.errors) maps them to HTTP."""

import ast
from pathlib import Path

import pytest
from rest_framework.exceptions import APIException

from core.api.errors import KIND_STATUS, api_exception_handler
from core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    PaymentRequired,
    Unavailable,
    Unprocessable,
)

ROOT = Path(__file__).resolve().parents[2]
# The layers below the HTTP views: they must not know DRF.
SERVICE_LAYER = ("services.py", "selectors.py", "locks.py", "promotions.py", "tasks.py")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Invalid, 400),
        (PaymentRequired, 402),
        (Forbidden, 403),
        (NotFound, 404),
        (Conflict, 409),
        (Unprocessable, 422),
        (Unavailable, 503),
    ],
)
def test_each_family_has_its_status_and_the_api_body(error, status):
    response = api_exception_handler(error("some_code", "Said why.", fields={"x": ["bad"]}), {})
    assert response.status_code == status
    assert response.data == {
        "error": {"code": "some_code", "message": "Said why.", "fields": {"x": ["bad"]}}
    }
    assert "Retry-After" not in response


def test_a_retry_hint_becomes_retry_after():
    response = api_exception_handler(
        Conflict("busy", "Still running.", retryable=True, retry_after=1), {}
    )
    assert (response.status_code, response["Retry-After"]) == (409, "1")


def test_domain_errors_are_not_http_exceptions():
    assert not issubclass(DomainError, APIException)
    families = (Invalid, PaymentRequired, Forbidden, NotFound, Conflict, Unprocessable, Unavailable)
    assert set(KIND_STATUS) == {cls.kind for cls in families}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def drf_imports(paths) -> dict[str, set[str]]:
    found = {}
    for path in paths:
        drf = {n for n in _imports(path) if n.split(".")[0] == "rest_framework"}
        if drf:
            found[path.name] = drf
    return found


def test_the_service_layer_never_imports_drf():
    paths = [
        p
        for p in (*ROOT.glob("core/*.py"), *ROOT.glob("coupons/**/*.py"))
        if (p.name in SERVICE_LAYER or "engine" in p.parts or p.name == "errors.py")
        and "tests" not in p.parts
        and "migrations" not in p.parts
    ]
    assert len(paths) > 10
    assert drf_imports(paths) == {}


def test_the_check_sees_a_drf_import(tmp_path):
    # the checker itself: a services module raising a DRF exception is reported
    bad = tmp_path / "services.py"
    bad.write_text("from rest_framework.exceptions import ValidationError\n")
    assert drf_imports([bad]) == {"services.py": {"rest_framework.exceptions"}}
