"""Shopper identities from a request's `context`, hashed before anything is stored.

HMAC-SHA256 with a server key: equal identities give equal digests (so accounts sharing
a card can be matched) while a database dump reveals no emails, IPs or card fingerprints
and cannot be reversed by hashing candidate values without the key. Emails are
normalised first so aliases of one mailbox match: case, dots and "+tags" of the local
part, googlemail.com = gmail.com.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from django.conf import settings

# context field -> identity kind. `session_id` is not an identity (it changes per visit).
IDENTITY_FIELDS = {
    "device_id": "device",
    "ip": "ip",
    "email": "email",
    "payment_fingerprint": "payment",
}


def _key() -> bytes:
    configured = settings.ABUSE_IDENTITY_KEY
    if configured:
        return configured.encode()
    return hashlib.sha256(b"abuse-identity:" + settings.SECRET_KEY.encode()).digest()


def normalize_email(email: str) -> str:
    local, _, domain = email.strip().lower().rpartition("@")
    if not local:
        return email.strip().lower()
    local = local.split("+", 1)[0].replace(".", "")
    if domain == "googlemail.com":
        domain = "gmail.com"
    return f"{local}@{domain}"


def _normalize(field: str, value: str) -> str:
    value = str(value).strip()
    if field == "email":
        return normalize_email(value)
    if field == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value


def digest(field: str, value: str) -> str:
    text = f"{field}:{_normalize(field, value)}".encode()
    return hmac.new(_key(), text, hashlib.sha256).hexdigest()


def digests(context: dict | None) -> dict[str, str]:
    """Identity kind -> digest, for the identity fields the request sent."""
    return {
        kind: digest(field, context[field])
        for field, kind in IDENTITY_FIELDS.items()
        if context and context.get(field)
    }


def stored_context(context: dict | None, digested: dict[str, str]) -> dict[str, str]:
    """What a redemption keeps of the context: the same fields, each hashed. `digested`:
    digests(context), so apply hashes each identity once."""
    stored = {field: digested[kind] for field, kind in IDENTITY_FIELDS.items() if kind in digested}
    if context and context.get("session_id"):
        stored["session_id"] = digest("session_id", context["session_id"])
    return stored
