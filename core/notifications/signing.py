"""The signature a webhook carries, as payment webhooks have it (API.md 1.1):
`Slotrush-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of the raw body>`, keyed with the
hospital's webhook secret. `verify` is what a receiver does, and what the tests do."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "Slotrush-Signature"
# How old a signature a receiver should still take.
TOLERANCE_SECONDS: Final = 300


def digest(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, at: int) -> str:
    """The header's value for `body` sent at unix time `at`."""
    return f"t={at},v1={digest(secret, body)}"


def verify(secret: str, body: bytes, header: str, now: float) -> bool:
    """Whether `header` signs `body` with `secret`, at most TOLERANCE_SECONDS old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(fields["t"])
    except (KeyError, ValueError):
        return False
    fresh = abs(now - at) <= TOLERANCE_SECONDS
    return fresh and hmac.compare_digest(fields.get("v1", ""), digest(secret, body))
