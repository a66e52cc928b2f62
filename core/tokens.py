"""Bearer tokens: JWTs that say who a request speaks for.

HS256 with SLOTRUSH_SECRET by default (core.hs256); EdDSA or RS256 with a public key or a
JWKS instead (core.token_keys), so that a server that verifies tokens cannot mint them. A
patient token carries `sub` (the patient id) and `exp`; `role: "admin"` is the platform
(`sub` optional); `role: "hospital_admin"` with `hospital_id` administers that one hospital.
Verified tokens are cached by their raw text until they expire: verifying one is a large
share of a booking's CPU time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from core.domain import ID_PATTERN
from core.hs256 import HS256
from core.jwt_claims import ClaimRules, invalid, parse_payload
from core.keyed import LruCache
from core.settings import Settings

if TYPE_CHECKING:
    # PyJWT and `cryptography` (about 10 MiB of each serving process) load only for the
    # public keys that need them: HS256 is core.hs256's.
    from core.token_keys import PublicKeys, SigningKey

# RFC 7518 3.2: an HS256 key must be at least as long as the hash.
MIN_SECRET_BYTES: Final = 32
ADMIN_ROLE: Final = "admin"
HOSPITAL_ADMIN_ROLE: Final = "hospital_admin"
DEFAULT_TTL_SECONDS: Final = 3600


class Principal(NamedTuple):
    """Who a verified token speaks for: `subject` is its `sub`; `role` is ADMIN_ROLE,
    HOSPITAL_ADMIN_ROLE (bound to `hospital_id`) or None for a patient. A named tuple:
    immutable, and built for every new token at a third of a frozen dataclass's cost."""

    subject: str | None
    role: str | None = None
    hospital_id: str | None = None

    @property
    def admin(self) -> bool:
        """The platform administrator, over every hospital."""
        return self.role == ADMIN_ROLE

    @property
    def patient_id(self) -> str | None:
        """The patient the token acts for: a hospital administrator's `sub` names staff."""
        return None if self.role == HOSPITAL_ADMIN_ROLE else self.subject


def check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"SLOTRUSH_SECRET must be at least {MIN_SECRET_BYTES} bytes long")


def issue_token(
    key: str | SigningKey,
    *,
    subject: str | None = None,
    admin: bool = False,
    hospital_id: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """A token for a patient (`subject`), the platform (`admin`) or one hospital's
    administrator (`hospital_id`), valid for `ttl` seconds; signed with the HS256 secret
    `key`, or with a private key."""
    if admin and hospital_id is not None:
        raise ValueError("a token is for the platform (admin) or for one hospital, not both")
    if subject is None and not admin and hospital_id is None:
        raise ValueError("a patient token needs a subject (the patient id)")
    for name, value in (("subject", subject), ("hospital_id", hospital_id)):
        if value is not None and not ID_PATTERN.fullmatch(value):
            raise ValueError(f"{name} {value!r} is not an id of 1..64 chars of [A-Za-z0-9._-]")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + ttl}
    optional = {"sub": subject, "iss": issuer, "aud": audience, "hospital_id": hospital_id}
    claims.update((name, value) for name, value in optional.items() if value is not None)
    if admin:
        claims["role"] = ADMIN_ROLE
    elif hospital_id is not None:
        claims["role"] = HOSPITAL_ADMIN_ROLE
    if isinstance(key, str):
        check_secret(key)
        return HS256(key).sign(claims)
    import jwt

    headers = None if key.kid is None else {"kid": key.kid}
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers=headers)


def principal_of(claims: dict[str, Any]) -> Principal:
    """Who verified claims speak for; SlotrushError(unauthorized) if they name no one."""
    subject = claims.get("sub")
    if subject is not None and not _is_id(subject):
        raise invalid("the token's sub is not a valid id")
    role = claims.get("role")
    if role == ADMIN_ROLE:
        return Principal(subject, ADMIN_ROLE)
    if role == HOSPITAL_ADMIN_ROLE:
        hospital_id = claims.get("hospital_id")
        if not _is_id(hospital_id):
            raise invalid("a hospital_admin token needs its hospital's id (hospital_id)")
        return Principal(subject, HOSPITAL_ADMIN_ROLE, hospital_id)
    if subject is None:
        raise invalid("the token names no patient (sub)")
    return Principal(subject)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


# Tokens remembered per process. An entry costs about 480 bytes (the token's string and its
# principal); 65,536 of them took 31 MiB of each worker through a crowd of new patients. A
# patient's repeated requests (a retry, reading the booking just made) come within seconds,
# and a token missed here costs one HS256 verification (about 8 µs), so a few thousand of
# the most recent ones keep nearly all of the saving for 2 MiB.
TOKENS_REMEMBERED = 4_096


class TokenVerifier:
    """Verifies tokens signed with the HS256 secret `key` or by one of the public keys `key`,
    remembering the verified ones (bounded, least recently used out)."""

    def __init__(
        self,
        key: str | PublicKeys,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        cache_size: int = TOKENS_REMEMBERED,
    ) -> None:
        if isinstance(key, str):
            check_secret(key)
        self._payload: Callable[[str], bytes] = HS256(key) if isinstance(key, str) else key
        self._rules = ClaimRules(issuer, audience)
        self._verified: LruCache[str, tuple[Principal, int]] = LruCache(cache_size)

    def verify(self, token: str) -> Principal:
        """The token's principal; SlotrushError(unauthorized) for anything not valid now."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            self._verified.pop(token)
        principal, expires = self.decode(token)
        self._verified.put(token, (principal, expires))
        return principal

    def decode(self, token: str) -> tuple[Principal, int]:
        """The token's principal and expiry (`exp`), verified afresh (no cache)."""
        claims = parse_payload(self._payload(token))
        expires = self._rules.expiry(claims, time.time())
        return principal_of(claims), expires


def token_verifier(settings: Settings) -> TokenVerifier:
    """The verifier the settings ask for: by the public keys they name, else by the HS256
    secret. ValueError if a key file does not load, or if they name no key at all."""
    keys: PublicKeys | None = None
    if settings.jwt_public_key or settings.jwt_jwks:
        from core.token_keys import public_keys

        keys = public_keys(settings)
    key = keys if keys is not None else settings.secret
    if key is None:
        raise ValueError("tokens need SLOTRUSH_SECRET, or a public key or JWKS to verify them")
    return TokenVerifier(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
