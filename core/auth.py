"""Who is calling: a server with a scoped API key, or an end customer with a JWT.

`request.user` becomes a `Principal`. Views ask it for scopes and, through
`resolve_customer_id`, for the customer the call is about (API.md "Auth").
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from core.errors import Forbidden
from core.models import ApiKey, Scope

if TYPE_CHECKING:
    from jwt.types import Options  # PyJWT >= 2.10


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_key" | "customer"
    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    customer_id: str | None = None
    # For end customers: segments vouched for by the token (a `segments` claim).
    segments: frozenset[str] = field(default_factory=frozenset)

    is_authenticated = True
    is_anonymous = False

    @property
    def ident(self) -> str:
        """Stable id used to scope idempotency keys and rate limits."""
        return f"{self.kind}:{self.id}"


_key_cache: dict[str, tuple[float, Principal | None]] = {}


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(self.keyword + " "):
            return None
        key = header[len(self.keyword) + 1 :].strip()
        principal = self._verify(key)
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return principal, key

    def authenticate_header(self, request):
        return self.keyword

    @staticmethod
    def _verify(key: str) -> Principal | None:
        # Verified keys are remembered briefly in-process: hashing and a lookup on every
        # checkout call is wasted work (revocation applies within API_KEY_CACHE_SECONDS).
        digest = hashlib.sha256(key.encode()).hexdigest()
        ttl = settings.API_KEY_CACHE_SECONDS
        now = time.monotonic()
        cached = _key_cache.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        try:
            # The manager is typed for AbstractAPIKey; ours returns ApiKey (with scopes).
            api_key = cast(ApiKey, ApiKey.objects.get_from_key(key))
        except ApiKey.DoesNotExist:
            principal = None
        else:
            principal = (
                None
                if api_key.has_expired
                else Principal(kind="api_key", id=api_key.prefix, scopes=frozenset(api_key.scopes))
            )
        if ttl > 0:
            if len(_key_cache) > 10_000:
                _key_cache.clear()
            _key_cache[digest] = (now + ttl, principal)
        return principal


class CustomerJWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(self.keyword + " "):
            return None
        token = header[len(self.keyword) + 1 :].strip()
        claims = decode_customer_token(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise exceptions.AuthenticationFailed("The token has no subject.")
        segments = claims.get("segments")
        segments = (
            frozenset(x for x in segments if isinstance(x, str))
            if isinstance(segments, list)
            else frozenset()
        )
        return Principal(kind="customer", id=sub, customer_id=sub, segments=segments), token

    def authenticate_header(self, request):
        return self.keyword


def decode_customer_token(token: str) -> dict:
    algorithm = settings.JWT_ALGORITHM
    key = (
        settings.JWT_PUBLIC_KEY
        if algorithm.startswith(("RS", "ES", "PS"))
        else settings.JWT_SIGNING_KEY
    )
    if not key:
        raise exceptions.AuthenticationFailed("Customer tokens are not configured.")
    options: Options = {"require": ["exp", "sub"]}
    kwargs = {}
    if settings.JWT_AUDIENCE:
        kwargs["audience"] = settings.JWT_AUDIENCE
    else:
        options["verify_aud"] = False
    if settings.JWT_ISSUER:
        kwargs["issuer"] = settings.JWT_ISSUER
    try:
        return jwt.decode(token, key, algorithms=[algorithm], options=options, **kwargs)
    except jwt.ExpiredSignatureError:
        raise exceptions.AuthenticationFailed("The token has expired.") from None
    except jwt.PyJWTError as exc:
        raise exceptions.AuthenticationFailed(f"Invalid token: {exc}") from None


class _HasScope(permissions.BasePermission):
    scope: str = ""
    allow_customer = False

    def has_permission(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        if principal.kind == "customer":
            return self.allow_customer
        return self.scope in principal.scopes


class HasStorefrontScope(_HasScope):
    """Storefront server key, or an end customer acting for themselves."""

    scope = Scope.STOREFRONT
    allow_customer = True


class HasStorefrontServerScope(_HasScope):
    """Storefront server key only (order confirmation is not the shopper's to call)."""

    scope = Scope.STOREFRONT


class HasAdminScope(_HasScope):
    scope = Scope.ADMIN


def resolve_customer_id(principal: Principal, body_customer_id: str | None) -> str | None:
    """The customer a call is about: a JWT's `sub`, or the body's id under an API key."""
    if principal.kind == "customer":
        if body_customer_id is not None and body_customer_id != principal.customer_id:
            raise Forbidden(
                "customer_mismatch", "The customer in the body is not the token's subject."
            )
        return principal.customer_id
    return body_customer_id
