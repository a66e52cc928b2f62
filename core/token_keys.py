"""Asymmetric token keys: a server that holds only public keys verifies tokens it cannot mint.

`SLOTRUSH_JWT_PUBLIC_KEY` names a PEM file with one Ed25519 (EdDSA) or RSA (RS256) public
key; `SLOTRUSH_JWT_JWKS` a JWKS file (RFC 7517) whose keys tokens choose by `kid`. PyJWT with
`cryptography` does the verification; a loading problem is a ValueError that names the file
and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)

from core.jwt_claims import invalid
from core.settings import Settings

PUBLIC_KEY_ENV: Final = "SLOTRUSH_JWT_PUBLIC_KEY"
JWKS_ENV: Final = "SLOTRUSH_JWT_JWKS"
# RSA below this is refused (NIST SP 800-131A); PyJWT refuses it too once told to.
MIN_RSA_BITS: Final = 2048
_OPTIONS: Final[Any] = {"enforce_minimum_key_length": True}

PublicKey: TypeAlias = Ed25519PublicKey | RSAPublicKey
PrivateKey: TypeAlias = Ed25519PrivateKey | RSAPrivateKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    algorithm: str
    key: PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key and the `kid` its tokens name (needed when servers verify by JWKS)."""

    algorithm: str
    key: PrivateKey
    kid: str | None = None


class PublicKeys:
    """The verified payload of a token signed by one of `keys`, or SlotrushError(unauthorized).
    `keys` maps each `kid` to its key; the key of a PEM file is under None and takes any kid."""

    def __init__(self, keys: dict[str | None, VerificationKey]) -> None:
        self._keys = keys
        self._jws = jwt.PyJWS()

    def __call__(self, token: str) -> bytes:
        try:
            key = self._key_for(self._jws.get_unverified_header(token).get("kid"))
            verified = self._jws.decode_complete(
                token, key.key, algorithms=[key.algorithm], options=_OPTIONS
            )
        except jwt.InvalidSignatureError:
            raise invalid("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise invalid("the token is not signed with this server's key algorithm") from None
        except jwt.PyJWTError:
            raise invalid("the token is malformed or not valid") from None
        payload: bytes = verified["payload"]
        return payload

    def _key_for(self, kid: object) -> VerificationKey:
        single = self._keys.get(None)
        if single is not None:
            return single
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise invalid("the token's key id (kid) names no key this server trusts")
        return key


def public_keys(settings: Settings) -> PublicKeys | None:
    """The public keys the settings name, loaded; None when they name none (HS256)."""
    if settings.jwt_public_key and settings.jwt_jwks:
        raise ValueError(f"set {PUBLIC_KEY_ENV} or {JWKS_ENV}, not both")
    if settings.jwt_public_key:
        return PublicKeys({None: _pem_public_key(settings.jwt_public_key)})
    if settings.jwt_jwks:
        return PublicKeys(_jwks(settings.jwt_jwks))
    return None


def load_signing_key(path: str, kid: str | None = None) -> SigningKey:
    """The Ed25519 or RSA private key of a PEM file (unencrypted)."""
    pem = _read(path, "private key")
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey | RSAPrivateKey):
        raise ValueError(f"{path} holds neither an Ed25519 nor an RSA private key")
    return SigningKey(_algorithm(key, path), key, kid)


def _pem_public_key(path: str) -> VerificationKey:
    pem = _read(path, f"{PUBLIC_KEY_ENV} file")
    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"{PUBLIC_KEY_ENV}: {path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey | RSAPublicKey):
        raise ValueError(f"{PUBLIC_KEY_ENV}: {path} holds neither an Ed25519 nor an RSA key")
    return VerificationKey(_algorithm(key, f"{PUBLIC_KEY_ENV}: {path}"), key)


def _jwks(path: str) -> dict[str | None, VerificationKey]:
    where = f"{JWKS_ENV}: {path}"
    text = _read(path, f"{JWKS_ENV} file")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where} is not JSON: {exc}") from None
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise ValueError(f'{where} is not a JWK Set: no "keys" array')
    keys: dict[str | None, VerificationKey] = {}
    for index, member in enumerate(members):
        # Encryption keys may share a JWKS with signing keys; they verify nothing.
        if isinstance(member, dict) and member.get("use") == "enc":
            continue
        kid, key = _jwk(member, f"{where}: key {index}")
        if kid in keys:
            raise ValueError(f"{where}: two keys have the kid {kid!r}")
        keys[kid] = key
    if not keys:
        raise ValueError(f"{where} has no signing key")
    return keys


def _jwk(member: object, where: str) -> tuple[str, VerificationKey]:
    if not isinstance(member, dict):
        raise ValueError(f"{where} is not a JSON object")
    kid = member.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError(f"{where} has no kid: tokens choose their key by kid")
    where = f"{where} ({kid!r})"
    try:
        jwk = jwt.PyJWK(member)
    except jwt.PyJWTError as exc:
        raise ValueError(f"{where} is not a usable key: {exc}") from None
    if not isinstance(jwk.key, Ed25519PublicKey | RSAPublicKey):
        raise ValueError(f"{where} is not an Ed25519 or RSA public key")
    algorithm = _algorithm(jwk.key, where)
    if jwk.algorithm_name != algorithm:
        raise ValueError(f"{where} is for {jwk.algorithm_name}; use EdDSA or RS256")
    return kid, VerificationKey(algorithm, jwk.key)


def _algorithm(key: PublicKey | PrivateKey, where: str) -> str:
    if isinstance(key, Ed25519PublicKey | Ed25519PrivateKey):
        return "EdDSA"
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"{where}: the RSA key has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
    return "RS256"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror}") from None
