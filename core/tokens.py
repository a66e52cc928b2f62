"""Bearer tokens: HS256 JWTs signed with SLOTRUSH_SECRET.

A patient token carries `sub` (the patient id) and `exp`; an admin token carries
`role: "admin"` and `exp`, `sub` optional. Verified tokens are cached by their raw text until
they expire: decoding a JWT is a large share of a booking's CPU time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from core.domain import ID_PATTERN, Code
from core.errors import SlotrushError
from core.keyed import LruCache

ALGORITHM: Final = "HS256"
# RFC 7518 3.2: an HS256 key must be at least as long as the hash. PyJWT warns below that.
MIN_SECRET_BYTES: Final = 32
ADMIN_ROLE: Final = "admin"
DEFAULT_TTL_SECONDS: Final = 3600
_DECODE_OPTIONS: Final[Any] = {"require": ["exp"], "enforce_minimum_key_length": True}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for. `subject` is the patient id, if the token names one."""

    subject: str | None
    admin: bool


def check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"SLOTRUSH_SECRET must be at least {MIN_SECRET_BYTES} bytes long")


def issue_token(
    secret: str,
    *,
    subject: str | None = None,
    admin: bool = False,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """A signed token for a patient (`subject`) or an admin; valid for `ttl` seconds."""
    check_secret(secret)
    if subject is None and not admin:
        raise ValueError("a patient token needs a subject (the patient id)")
    if subject is not None and not ID_PATTERN.fullmatch(subject):
        raise ValueError(f"subject {subject!r} is not an id of 1..64 chars of [A-Za-z0-9._-]")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + ttl}
    if subject is not None:
        claims["sub"] = subject
    if admin:
        claims["role"] = ADMIN_ROLE
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    """Verifies tokens, remembering the verified ones (bounded, least recently used out)."""

    def __init__(self, secret: str, *, cache_size: int = 65_536) -> None:
        check_secret(secret)
        self._secret = secret
        self._verified: LruCache[str, tuple[Principal, float]] = LruCache(cache_size)

    def verify(self, token: str) -> Principal:
        """The token's principal; SlotrushError(unauthorized) for anything not valid now."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            self._verified.pop(token)
        principal, expires = self._decode(token)
        self._verified.put(token, (principal, expires))
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options=_DECODE_OPTIONS
            )
        except jwt.PyJWTError as exc:
            raise SlotrushError(Code.UNAUTHORIZED, _reason(exc)) from None
        subject = claims.get("sub")
        admin = claims.get("role") == ADMIN_ROLE
        if subject is None and not admin:
            raise SlotrushError(Code.UNAUTHORIZED, "the token names no patient (sub)")
        if subject is not None and not ID_PATTERN.fullmatch(subject):
            raise SlotrushError(Code.UNAUTHORIZED, "the token's sub is not a valid patient id")
        return Principal(subject, admin), float(claims["exp"])


def _reason(exc: jwt.PyJWTError) -> str:
    # Say which check failed without echoing anything from the token itself.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"the token is not signed with {ALGORITHM}"
    return "the token is malformed or not valid"
