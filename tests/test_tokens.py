"""Tokens: roles, issuer and audience, the HS256 verifier's edges, and public-key verification
by a PEM file or a JWKS (keys made in the test)."""

from __future__ import annotations

import base64
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest

from core.errors import SlotrushError
from core.hs256 import HS256
from core.jwt_claims import ClaimRules
from core.settings import Settings
from core.token_keys import load_signing_key
from core.tokens import (
    HOSPITAL_ADMIN_ROLE,
    Principal,
    TokenVerifier,
    issue_token,
    principal_of,
    token_verifier,
)
from tests.keys import (
    ec_key,
    ed25519_key,
    jwks_text,
    public_jwk,
    rsa_key,
    write_jwks,
    write_private,
    write_public,
)

SECRET = "token-tests-secret-0123456789abcdef012345"


def in_a_minute() -> int:
    return int(time.time()) + 60


def hs256_signed(claims: dict[str, object], key: bytes) -> str:
    """An HS256 token signed by hand: PyJWT will not take a PEM text as an HMAC key."""
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256"}, claims)
    ]
    signing_input = b".".join(segments)
    mac = base64.urlsafe_b64encode(hmac.digest(key, signing_input, "sha256")).rstrip(b"=")
    return (signing_input + b"." + mac).decode()


def refused(verifier: TokenVerifier, token: str) -> str:
    """The reason the verifier gives for refusing `token`."""
    with pytest.raises(SlotrushError) as refusal:
        verifier.verify(token)
    assert refusal.value.code == "unauthorized"
    return refusal.value.detail or ""


# --- roles ----------------------------------------------------------------------------------------


def test_a_hospital_admin_is_bound_to_one_hospital_and_is_neither_admin_nor_patient() -> None:
    token = issue_token(SECRET, subject="staff-7", hospital_id="h-1")
    principal = TokenVerifier(SECRET).verify(token)
    assert principal == Principal("staff-7", HOSPITAL_ADMIN_ROLE, "h-1")
    assert not principal.admin and principal.patient_id is None


def test_the_platform_admin_and_a_patient_keep_their_meaning() -> None:
    admin = TokenVerifier(SECRET).verify(issue_token(SECRET, admin=True))
    assert admin.admin and admin.hospital_id is None and admin.subject is None
    patient = TokenVerifier(SECRET).verify(issue_token(SECRET, subject="p1"))
    assert not patient.admin and patient.patient_id == "p1" and patient.role is None


@pytest.mark.parametrize("hospital_id", [None, "", "h 1", "x" * 65, 7, ["h1"]])
def test_a_hospital_admin_token_without_a_valid_hospital_is_refused(hospital_id: object) -> None:
    claims = {"role": "hospital_admin", "exp": in_a_minute()}
    if hospital_id is not None:
        claims["hospital_id"] = hospital_id
    assert "hospital_id" in refused(TokenVerifier(SECRET), jwt.encode(claims, SECRET))


def test_an_admin_claim_about_a_hospital_binds_it_to_nothing() -> None:
    principal = principal_of({"role": "admin", "hospital_id": "h1"})
    assert principal.admin and principal.hospital_id is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"admin": True, "hospital_id": "h1"}, "not both"),
        ({"hospital_id": "h 1"}, "hospital_id 'h 1'"),
        ({}, "needs a subject"),
    ],
)
def test_issue_token_refuses_what_names_no_one_or_two_roles(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        issue_token(SECRET, **arguments)  # type: ignore[arg-type]


# --- issuer and audience ----------------------------------------------------------------------


def test_issuer_and_audience_are_checked_when_set() -> None:
    verifier = TokenVerifier(SECRET, issuer="https://idp", audience="slotrush")
    good = issue_token(SECRET, subject="p1", issuer="https://idp", audience="slotrush")
    assert verifier.verify(good).subject == "p1"
    listed = jwt.encode(
        {"sub": "p1", "exp": in_a_minute(), "iss": "https://idp", "aud": ["a", "slotrush"]},
        SECRET,
    )
    assert verifier.verify(listed).subject == "p1"
    assert "issuer" in refused(verifier, issue_token(SECRET, subject="p1", audience="slotrush"))
    assert "issuer" in refused(
        verifier, issue_token(SECRET, subject="p1", issuer="https://other", audience="slotrush")
    )
    assert "aud" in refused(verifier, issue_token(SECRET, subject="p1", issuer="https://idp"))
    assert "aud" in refused(
        verifier, issue_token(SECRET, subject="p1", issuer="https://idp", audience="other")
    )


def test_without_an_expected_audience_a_token_naming_one_is_refused() -> None:
    assert "aud" in refused(TokenVerifier(SECRET), issue_token(SECRET, subject="p1", audience="x"))


# --- the HS256 verifier's edges ------------------------------------------------------------------


def test_expiry_is_exclusive_and_truncated_to_seconds() -> None:
    rules = ClaimRules()
    assert rules.expiry({"exp": 101}, now=100.5) == 101
    assert rules.expiry({"exp": 101.9}, now=100.5) == 101
    for claims in ({"exp": 100}, {"exp": 100.9}):
        with pytest.raises(SlotrushError, match="expired"):
            rules.expiry(claims, now=100.0)
    with pytest.raises(SlotrushError, match="nbf"):
        rules.expiry({"exp": 200, "nbf": 101}, now=100.5)
    assert rules.expiry({"exp": 200, "nbf": 100, "iat": 100.9}, now=100.5) == 200


@pytest.mark.parametrize("secret_bytes", [32, 63, 64, 65, 200])
def test_secrets_of_every_length_verify_as_pyjwt_signs(secret_bytes: int) -> None:
    # Keys longer than SHA-256's block are hashed first (RFC 2104).
    secret = "k" * secret_bytes
    token = jwt.encode({"sub": "p1", "exp": in_a_minute()}, secret, algorithm="HS256")
    assert TokenVerifier(secret).verify(token).subject == "p1"
    assert "signature" in refused(TokenVerifier(secret + "x"), token)


@pytest.mark.parametrize("secret_bytes", [32, 64, 65, 200])
def test_our_hs256_signer_writes_pyjwts_bytes(secret_bytes: int) -> None:
    # Tokens and room tickets are signed by core.hs256, so that serving never loads PyJWT.
    secret = "k" * secret_bytes
    claims = {"iat": 1, "exp": in_a_minute(), "sub": "p-1.x_Y", "role": "admin", "arr": 7}
    token = HS256(secret).sign(claims)
    assert token == jwt.encode(claims, secret, algorithm="HS256")
    assert jwt.decode(token, secret, algorithms=["HS256"]) == claims
    assert "signature" in refused(TokenVerifier(secret + "x"), token)


def test_many_issuer_headers_all_verify_while_remembered_headers_stay_bounded() -> None:
    verifier = TokenVerifier(SECRET, cache_size=1)
    for kid in range(300):
        token = jwt.encode({"sub": "p1", "exp": in_a_minute()}, SECRET, headers={"kid": f"k{kid}"})
        assert verifier.verify(token).subject == "p1"
    forged = jwt.encode({"sub": "p1", "exp": in_a_minute()}, SECRET * 2, algorithm="HS384")
    assert "HS256" in refused(verifier, forged)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier("short")


# --- public keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("make_key", "algorithm"), [(ed25519_key, "EdDSA"), (rsa_key, "RS256")])
def test_a_pem_public_key_verifies_tokens_only_its_private_key_signs(
    tmp_path: Path, make_key: object, algorithm: str
) -> None:
    key = make_key()  # type: ignore[operator]
    public = write_public(key, tmp_path / "public.pem")
    verifier = token_verifier(Settings(jwt_public_key=public, secret=SECRET))
    signing = load_signing_key(write_private(key, tmp_path / "private.pem"))
    assert signing.algorithm == algorithm
    token = issue_token(signing, subject="p1")
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert verifier.verify(token) == Principal("p1")

    # With a public key, the secret mints nothing, not even HMAC with the public key's text.
    hmac_named = jwt.encode({"sub": "p1", "exp": in_a_minute()}, SECRET, headers={"kid": "ed-1"})
    assert "algorithm" in refused(verifier, hmac_named)
    confused = hs256_signed({"sub": "p1", "exp": in_a_minute()}, Path(public).read_bytes())
    assert "algorithm" in refused(verifier, confused)
    other = load_signing_key(write_private(make_key(), tmp_path / "other.pem"))  # type: ignore[operator]
    assert "signature" in refused(verifier, issue_token(other, subject="p1"))
    expired = issue_token(signing, subject="p1", now=time.time() - 7200)
    assert "expired" in refused(verifier, expired)
    assert "alg" in refused(verifier, jwt.encode({"sub": "p1", "exp": in_a_minute()}, None, "none"))


def test_issuer_and_audience_apply_to_public_key_tokens(tmp_path: Path) -> None:
    key = ed25519_key()
    settings = Settings(
        jwt_public_key=write_public(key, tmp_path / "public.pem"),
        jwt_issuer="https://idp",
        jwt_audience="slotrush",
    )
    verifier = token_verifier(settings)
    signing = load_signing_key(write_private(key, tmp_path / "private.pem"))
    good = issue_token(signing, hospital_id="h1", issuer="https://idp", audience="slotrush")
    assert verifier.verify(good) == Principal(None, HOSPITAL_ADMIN_ROLE, "h1")
    assert "aud" in refused(verifier, issue_token(signing, subject="p1", issuer="https://idp"))


def test_a_jwks_picks_the_key_by_kid(tmp_path: Path) -> None:
    edwards, rivest = ed25519_key(), rsa_key()
    encryption = public_jwk(rsa_key(), "enc-1") | {"use": "enc", "alg": "RSA-OAEP"}
    jwks = write_jwks(
        [public_jwk(edwards, "ed-1"), encryption, public_jwk(rivest, "rsa-1")],
        tmp_path / "jwks.json",
    )
    verifier = token_verifier(Settings(jwt_jwks=jwks))
    ed_signing = load_signing_key(write_private(edwards, tmp_path / "ed.pem"), "ed-1")
    rsa_signing = load_signing_key(write_private(rivest, tmp_path / "rsa.pem"), "rsa-1")
    assert verifier.verify(issue_token(ed_signing, subject="p1")).subject == "p1"
    assert verifier.verify(issue_token(rsa_signing, admin=True)).admin

    unnamed = load_signing_key(write_private(edwards, tmp_path / "ed.pem"))
    assert "kid" in refused(verifier, issue_token(unnamed, subject="p1"))
    unknown = load_signing_key(write_private(edwards, tmp_path / "ed.pem"), "ed-2")
    assert "kid" in refused(verifier, issue_token(unknown, subject="p1"))
    # The right kid with another key's signature, and another kid's algorithm.
    swapped = load_signing_key(write_private(ed25519_key(), tmp_path / "x.pem"), "ed-1")
    assert "signature" in refused(verifier, issue_token(swapped, subject="p1"))
    mismatched = load_signing_key(write_private(edwards, tmp_path / "ed.pem"), "rsa-1")
    assert "algorithm" in refused(verifier, issue_token(mismatched, subject="p1"))
    hmac_named = jwt.encode({"sub": "p1", "exp": in_a_minute()}, SECRET, headers={"kid": "ed-1"})
    assert "algorithm" in refused(verifier, hmac_named)


def test_a_verifier_remembers_public_key_tokens_too(tmp_path: Path) -> None:
    key = ed25519_key()
    verifier = token_verifier(Settings(jwt_public_key=write_public(key, tmp_path / "k.pem")))
    token = issue_token(load_signing_key(write_private(key, tmp_path / "p.pem")), subject="p1")
    first = verifier.verify(token)
    assert verifier.verify(token) is first


# --- key files that do not load ------------------------------------------------------------------


def jwks_settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / f"jwks-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(text)
    return Settings(jwt_jwks=str(path))


def test_key_file_mistakes_are_named(tmp_path: Path) -> None:
    ed = ed25519_key()
    cases: dict[str, Settings] = {
        "not both": Settings(jwt_public_key="a.pem", jwt_jwks="b.json"),
        "cannot read": Settings(jwt_public_key=str(tmp_path / "missing.pem")),
        "not a PEM public key": Settings(
            jwt_public_key=write_private(ed, tmp_path / "private.pem")
        ),
        "neither an Ed25519 nor an RSA key": Settings(
            jwt_public_key=write_public(ec_key(), tmp_path / "ec.pem")
        ),
        "1024 bits": Settings(jwt_public_key=write_public(rsa_key(1024), tmp_path / "small.pem")),
        "is not JSON": jwks_settings(tmp_path, "{"),
        '"keys"': jwks_settings(tmp_path, '{"key": []}'),
        "no signing key": jwks_settings(tmp_path, '{"keys": []}'),
        "has no kid": jwks_settings(tmp_path, jwks_text({**public_jwk(ed, "x"), "kid": ""})),
        "two keys have the kid": jwks_settings(
            tmp_path, jwks_text(public_jwk(ed, "a"), public_jwk(ed25519_key(), "a"))
        ),
        "not an Ed25519 or RSA public key": jwks_settings(
            tmp_path, jwks_text({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"})
        ),
        "is for RS512": jwks_settings(
            tmp_path, jwks_text({**public_jwk(rsa_key(), "r"), "alg": "RS512"})
        ),
    }
    for message, settings in cases.items():
        with pytest.raises(ValueError, match=message):
            token_verifier(settings)


def test_a_private_key_in_a_jwks_is_refused(tmp_path: Path) -> None:
    key = ed25519_key()
    private = jwt.algorithms.OKPAlgorithm.to_jwk(key, as_dict=True) | {"kid": "k"}
    with pytest.raises(ValueError, match="public key"):
        token_verifier(jwks_settings(tmp_path, jwks_text(private)))


def test_no_key_at_all_is_named() -> None:
    with pytest.raises(ValueError, match="SLOTRUSH_SECRET"):
        token_verifier(Settings())
