"""Webhook signatures (API.md 1.1): `Slotrush-Signature: t=<unix>,v1=<hex>`, where v1 is the
HMAC-SHA256 of the raw body with the provider's secret, refused when wrong or when `t` is
more than `TOLERANCE_SECONDS` away from now.

The MAC covers the body only, as the contract says; a notice replayed within the window is
harmless, since applying a notice twice changes nothing (core.payments.ledger).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "Slotrush-Signature"
TOLERANCE_SECONDS: Final = 300


class BadSignature(Exception):
    """A notice whose signature is missing, malformed, wrong or out of its time window."""


def mac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={mac(secret, body)}"


def verify(secret: str, header: str | None, body: bytes, now: float) -> None:
    """Raise BadSignature unless `header` signs `body` and was made within the window. Several
    v1 values may be given (a provider rotating its secret): one must match."""
    if not header:
        raise BadSignature("no signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadSignature("malformed signature")
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("signature outside its time window")
    expected = mac(secret, body).encode()
    if not any(hmac.compare_digest(expected, c.encode(errors="replace")) for c in candidates):
        raise BadSignature("wrong signature")
