"""End-customer tokens verified with a public key (RS256), audience and issuer, as set
from the environment (API.md "Auth")."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework.test import APIClient

from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def rsa_keys():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


@pytest.fixture
def rs256(settings, rsa_keys):
    settings.JWT_ALGORITHM = "RS256"
    settings.JWT_PUBLIC_KEY = rsa_keys[1]
    settings.JWT_AUDIENCE = "storefront"
    settings.JWT_ISSUER = "https://id.example.com"
    return rsa_keys[0]


def _validate(token: str):
    CouponFactory(code="RSA10")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post(
        "/api/v1/coupons/validate",
        {"coupon_code": "RSA10", "cart": cart(("S", "c", "10.00", 1))},
        format="json",
    )


def _claims(**overrides):
    claims = {
        "sub": "u-rsa",
        "exp": int(time.time()) + 60,
        "aud": "storefront",
        "iss": "https://id.example.com",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_rs256_token_with_right_audience_and_issuer_is_accepted(rs256):
    response = _validate(jwt.encode(_claims(), rs256, algorithm="RS256"))
    assert response.status_code == 200
    assert response.json()["valid"] is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example.com"},
        {"exp": None},
        {"exp": int(time.time()) - 10},
        {"sub": None},
    ],
)
def test_rs256_token_with_wrong_claims_is_401(rs256, overrides):
    response = _validate(jwt.encode(_claims(**overrides), rs256, algorithm="RS256"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_hs256_token_is_refused_when_rs256_is_configured(rs256):
    token = jwt.encode(_claims(), "a-shared-secret-that-is-long-enough-0123", algorithm="HS256")
    assert _validate(token).status_code == 401
