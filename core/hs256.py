"""HS256 tokens (RFC 7515 compact JWS, RFC 7518 3.2) verified and signed with the standard
library (PyJWT and the `cryptography` it loads cost a serving process about 10 MiB).

PyJWT spends about 50 µs on a token it has never seen, and in a flash crowd every request is
a new patient with a new token; this verifier does the same checks in a few microseconds.
Every token of one issuer carries the same header bytes, so a header segment is parsed once
and remembered once a token bearing it has verified. Where it differs from PyJWT it is
stricter: a segment must be unpadded base64url (RFC 7515 2; PyJWT also takes `=` padding),
and no `crit` header extension is understood (PyJWT understands `b64`). The differential test
in tests/test_tokens_differential.py holds it to that.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from typing import Any, Final

import orjson

from core.jwt_claims import invalid

ALGORITHM: Final = "HS256"
# Header segments remembered; an issuer has one or a few, only verified tokens add one.
_HEADER_MEMORY: Final = 64
# base64url to the standard alphabet; '+', '/' and '=' are not base64url, so they become a
# character the strict decoder refuses.
_URL_TO_STANDARD: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
_STANDARD_TO_URL: Final = bytes.maketrans(b"+/", b"-_")
_SHA256_BLOCK: Final = 64
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))
# Padding by segment length modulo 4; a remainder of 1 is never base64.
_PADDING: Final = (b"", None, b"==", b"=")


def b64url_decode(segment: bytes) -> bytes:
    """The bytes of an unpadded, canonical base64url segment; ValueError for anything else."""
    padding = _PADDING[len(segment) % 4]
    if padding is None:
        raise ValueError("truncated base64")
    standard = segment.translate(_URL_TO_STANDARD) + padding
    decoded = binascii.a2b_base64(standard, strict_mode=True)
    # Unused low bits set in the last character would give one token many spellings.
    if binascii.b2a_base64(decoded, newline=False) != standard:
        raise ValueError("non-canonical base64")
    return decoded


def b64url_encode(data: bytes) -> bytes:
    """Unpadded base64url (RFC 7515 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_STANDARD_TO_URL).rstrip(b"=")


# PyJWT's header, spelled as PyJWT spells it (sorted keys, no spaces).
_SIGNED_HEADER: Final = b64url_encode(orjson.dumps({"alg": ALGORITHM, "typ": "JWT"}))


class HS256:
    """The verified payload of a token signed with `secret`, or SlotrushError(unauthorized);
    `sign` makes such tokens."""

    def __init__(self, secret: str) -> None:
        self._inner, self._outer = _hmac_pads(secret.encode())
        self._headers: set[bytes] = set()

    def __call__(self, token: str) -> bytes:
        try:
            raw = token.encode("ascii")
            header, payload, signature = raw.split(b".")
        except (UnicodeEncodeError, ValueError):
            raise invalid("the token is not three base64url segments") from None
        if header not in self._headers:
            _check_header(header)
        digest = self._hmac(raw[: len(header) + 1 + len(payload)])
        # A 32-byte digest is 43 base64 characters and one '='; comparing the encodings
        # accepts exactly the canonical spelling of the right signature.
        expected = binascii.b2a_base64(digest, newline=False)
        if not hmac.compare_digest(expected, signature.translate(_URL_TO_STANDARD) + b"="):
            raise invalid("the token's signature does not verify")
        try:
            claims = b64url_decode(payload)
        except ValueError:
            raise invalid("the token's payload is not base64url") from None
        self._remember(header)
        return claims

    def sign(self, claims: dict[str, Any]) -> str:
        """A token of `claims` signed with the secret: the bytes of PyJWT's `jwt.encode` when
        the claims are ASCII (orjson writes other characters as UTF-8, PyJWT escapes them)."""
        signing_input = _SIGNED_HEADER + b"." + b64url_encode(orjson.dumps(claims))
        signature = b64url_encode(self._hmac(signing_input))
        return (signing_input + b"." + signature).decode("ascii")

    def _hmac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def _remember(self, header: bytes) -> None:
        if header not in self._headers:
            if len(self._headers) >= _HEADER_MEMORY:
                self._headers.clear()
            self._headers.add(header)


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the key's inner and outer pads (RFC 2104): `hmac.digest` redoes
    this for every message, and it is half of its cost on a token."""
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (
        hashlib.sha256(key.translate(_INNER_PAD)),
        hashlib.sha256(key.translate(_OUTER_PAD)),
    )


def _check_header(segment: bytes) -> None:
    try:
        header: Any = orjson.loads(b64url_decode(segment))
    except ValueError:
        raise invalid("the token's header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise invalid("the token's header is not a JSON object")
    if header.get("alg") != ALGORITHM:
        raise invalid(f"the token is not signed with {ALGORITHM}")
    if "crit" in header:
        raise invalid("the token names critical header extensions this server does not know")
    # RFC 7797: an unencoded payload; PyJWT refuses it too without a detached payload.
    if header.get("b64", True) is False:
        raise invalid("the token's payload is not base64url encoded (b64: false)")
    if "kid" in header and not isinstance(header["kid"], str):
        raise invalid("the token's key id (kid) is not a string")
