"""Our HS256 verifier against PyJWT, the oracle, over valid and adversarial tokens.

The property: whatever the token, both accept or both refuse, and when both accept they agree
on who it speaks for and until when. The only exceptions are the cases where ours is stricter
on purpose, each named in STRICTER and shown by an example that PyJWT accepts and ours
refuses.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import SlotrushError
from core.tokens import Principal, TokenVerifier, principal_of

SECRET = "differential-test-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-entirely-0123456789abcdef"
NOW = int(time.time())
# Times at least this far from now, so that no verdict depends on when a check runs: NOW is
# taken at collection, and a full suite on a loaded machine may reach this module much later.
MARGIN = 86_400
PAST, FUTURE = NOW - MARGIN, NOW + MARGIN
ISSUER, AUDIENCE = "issuer-a", "audience-a"
HEADER = {"alg": "HS256", "typ": "JWT"}
Verdict = tuple[Principal, float] | None


# --- the two verifiers -----------------------------------------------------------------------


def pyjwt_verdict(token: str, issuer: str | None, audience: str | None) -> Verdict:
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            options={"require": ["exp"], "enforce_minimum_key_length": True},
            issuer=issuer,
            audience=audience,
        )
        return principal_of(claims), float(int(claims["exp"]))
    except (jwt.PyJWTError, SlotrushError):
        return None


# One verifier per setting for the whole module, so that remembered headers are exercised.
_VERIFIERS: dict[tuple[str | None, str | None], TokenVerifier] = {}


def our_verdict(token: str, issuer: str | None, audience: str | None) -> Verdict:
    verifier = _VERIFIERS.setdefault(
        (issuer, audience), TokenVerifier(SECRET, issuer=issuer, audience=audience)
    )
    try:
        principal, expires = verifier.decode(token)
    except SlotrushError:
        return None
    assert TokenVerifier(SECRET, issuer=issuer, audience=audience).verify(token) == principal
    # orjson reads an integer past 64 bits as the nearest double, so compare as doubles.
    return principal, float(expires)


def stricter_case(token: str) -> str | None:
    """The name of the deliberate strictness that makes ours refuse a token PyJWT accepted."""
    segments = token.split(".")
    if any("=" in segment for segment in segments):
        return "padded base64url"
    header_json, payload_json = (jwt.utils.base64url_decode(s) for s in segments[:2])
    if "crit" in json.loads(header_json):
        return "critical header extension"
    for document in (header_json, payload_json):
        try:
            orjson.loads(document)
        except orjson.JSONDecodeError:
            return "JSON that orjson refuses"
    payload = json.loads(payload_json)
    if any(type(payload.get(name)) in (bool, str) for name in ("exp", "iat", "nbf")):
        return "time claim that is not a JSON number"
    return None


STRICTER = {
    "padded base64url",
    "critical header extension",
    "JSON that orjson refuses",
    "time claim that is not a JSON number",
}


# --- building tokens by hand --------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON value written as this text, verbatim (numbers JSON encoders will not write)."""

    text: str


def dump(value: Any, *, ascii_only: bool = True) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(dump(item, ascii_only=ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def json_object(pairs: list[tuple[str, Any]], *, ascii_only: bool = True) -> bytes:
    """A JSON object written pair by pair, so that a key may appear twice."""
    members = (f"{json.dumps(k)}:{dump(v, ascii_only=ascii_only)}" for k, v in pairs)
    return ("{" + ",".join(members) + "}").encode("utf-8", "surrogatepass")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signature(signing_input: str, secret: str = SECRET) -> str:
    return b64(hmac.digest(secret.encode(), signing_input.encode(), "sha256"))


def signed(header: bytes, payload: bytes, secret: str = SECRET) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{signature(signing_input, secret)}"


def padded(token: str) -> str:
    """The same token with every segment's base64 padding written out (signed again)."""
    header, payload, _ = (_pad(s) for s in token.split("."))
    return f"{header}.{payload}.{_pad(signature(f'{header}.{payload}'))}"


def _pad(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def resigned(header: str, payload: str) -> str:
    return f"{header}.{payload}.{signature(f'{header}.{payload}')}"


def claims_token(claims: dict[str, Any], header: dict[str, Any] = HEADER) -> str:
    return signed(json.dumps(header).encode(), json.dumps(claims).encode())


def patient(**claims: Any) -> dict[str, Any]:
    return {"sub": "p1", "exp": FUTURE, **claims}


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def non_canonical(segment: str) -> str:
    """The same bytes spelled with a set unused bit in the last character."""
    assert len(segment) % 4 in (2, 3)
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) ^ 1]


def flip_bit(segment: str, bit: int) -> str:
    index = (bit // 6) % len(segment)
    flipped = ALPHABET[ALPHABET.index(segment[index]) ^ (1 << (bit % 6))]
    return segment[:index] + flipped + segment[index + 1 :]


# --- strategies ---------------------------------------------------------------------------------
# A token is drawn well formed except for a few flaws, each a whole family of adversarial
# variants, so that both accepted and refused tokens are common and most refusals have one
# cause.

FLAWS = (
    "header",
    "claims",
    "header json",
    "payload json",
    "header base64",
    "payload base64",
    "signature",
    "token",
)
IDS = st.sampled_from(["p1", "patient-42", "h.1_x-Y", "x" * 64])
NOT_IDS = st.sampled_from(["", "p 1", "x" * 65, "pätient", "p\n", "\ud800"])
NON_STRINGS = st.one_of(st.integers(-5, 5), st.none(), st.booleans(), st.just(["p1"]), st.just({}))
GOOD_TIMES = st.sampled_from([FUTURE, NOW + 10**6, float(FUTURE) + 0.5, 2**40, 2**64 + 1])
BAD_TIMES = st.one_of(
    st.sampled_from([PAST, NOW - 10**6, float(PAST) + 0.9, 0, -(2**70)]),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from([str(FUTURE), str(PAST), f" {FUTURE} ", "tomorrow", "1_0", ""]),
    st.sampled_from([Raw("1e400"), Raw("-1e400"), Raw("1" + "0" * 400), Raw("9" * 5000)]),
    st.just([FUTURE]),
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)
GOOD_CLAIMS = st.one_of(
    st.fixed_dictionaries({"sub": IDS}),
    st.fixed_dictionaries({"role": st.just("admin")}, optional={"sub": IDS}),
    st.fixed_dictionaries(
        {"role": st.just("hospital_admin"), "hospital_id": IDS}, optional={"sub": IDS}
    ),
).flatmap(
    lambda who: st.fixed_dictionaries(
        {**{name: st.just(value) for name, value in who.items()}, "exp": GOOD_TIMES},
        optional={
            "iat": st.sampled_from([PAST, float(PAST)]),
            "nbf": st.just(PAST),
            "iss": st.sampled_from([ISSUER, "issuer-b"]),
            "aud": st.sampled_from([AUDIENCE, [AUDIENCE, "x"], ["x"], "", []]),
            "jti": st.text(max_size=4),
            "extra": JSON_VALUES,
        },
    )
)
# One claim of good claims given a bad value (a set of flaws may hold more than one).
BAD_CLAIM = st.sampled_from(
    [
        ("exp", st.one_of(GOOD_TIMES, BAD_TIMES)),
        ("sub", st.one_of(IDS, NOT_IDS, NON_STRINGS)),
        ("role", st.sampled_from(["admin", "hospital_admin", "nurse", "", None, 1, ["admin"]])),
        ("hospital_id", st.one_of(IDS, NOT_IDS, NON_STRINGS)),
        ("iat", st.one_of(GOOD_TIMES, BAD_TIMES)),
        ("nbf", st.one_of(GOOD_TIMES, BAD_TIMES)),
        ("iss", st.sampled_from([ISSUER, "", 5, None, [ISSUER]])),
        ("aud", st.sampled_from([[AUDIENCE, 1], [1], 0, {"a": AUDIENCE}, None, True, [None]])),
        ("jti", NON_STRINGS),
    ]
).flatmap(lambda claim: claim[1].map(lambda value: {claim[0]: value}))
BAD_CLAIMS = st.tuples(GOOD_CLAIMS, BAD_CLAIM).map(lambda pair: {**pair[0], **pair[1]})

GOOD_HEADERS = st.fixed_dictionaries(
    {"alg": st.just("HS256")},
    optional={
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt", "", 5, None]),
        "kid": st.text(max_size=4),
        "cty": st.sampled_from(["JWT", "json"]),
        "b64": st.sampled_from([True, 0, "false"]),
        "jku": st.just("https://keys.example/jwks.json"),
    },
)
BAD_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["HS256", "hs256", "none", "HS512", "RS256", "", None, ["HS256"]]),
        "kid": NON_STRINGS,
        "crit": st.sampled_from([["b64"], ["exp"], [], "b64", [1]]),
        "b64": st.sampled_from([True, False]),
    },
)


@st.composite
def json_document(draw: st.DrawFn, values: dict[str, Any], flawed: bool) -> bytes:
    """`values` as a JSON object, or, when `flawed`, with a key twice, or not an object, or
    in an encoding or with bytes that only some parsers take."""
    pairs = list(values.items())
    flaw = (
        draw(st.sampled_from(["none", "spaces", "raw-utf-8"]))
        if not flawed
        else draw(
            st.sampled_from(
                ["twice", "not an object", "bom", "utf-16", "utf-32-le", "latin-1", "bad byte"]
            )
        )
    )
    if flaw == "twice" and pairs:
        key, _ = draw(st.sampled_from(pairs))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(JSON_VALUES)))
    if flaw == "not an object":
        return json.dumps(draw(JSON_VALUES), allow_nan=True).encode()
    text = json_object(pairs, ascii_only=flaw != "raw-utf-8")
    if flaw == "spaces":
        return b" \n\t" + text + b"\r\n "
    if flaw == "bom":
        return b"\xef\xbb\xbf" + text
    if flaw in ("utf-16", "utf-32-le", "latin-1"):
        return text.decode("utf-8", "surrogatepass").encode(flaw, "surrogatepass")
    if flaw == "bad byte":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + text[at:]
    return text


@st.composite
def segment(draw: st.DrawFn, data: bytes, flawed: bool) -> str:
    """`data` in base64url, misspelled when `flawed`."""
    encoded = b64(data)
    if not flawed:
        return encoded
    how = draw(st.sampled_from(["padded", "junk", "non-canonical", "cut"]))
    if how == "padded":
        return base64.urlsafe_b64encode(data).decode()
    if how == "junk":
        at = draw(st.integers(0, len(encoded)))
        junk = draw(st.sampled_from(["!", "+", "/", "=", " ", "\n", "é", "\x00"]))
        return encoded[:at] + junk + encoded[at:]
    if how == "non-canonical" and len(encoded) % 4 in (2, 3):
        return non_canonical(encoded)
    return encoded[: draw(st.integers(0, len(encoded)))]


@st.composite
def bad_signature(draw: st.DrawFn, signing_input: str) -> str:
    right = signature(signing_input)
    how = draw(st.sampled_from(["bit", "key", "padded", "non-canonical", "short", "long", "none"]))
    if how == "bit":
        return flip_bit(right, draw(st.integers(0, 6 * len(right) - 1)))
    return {
        "key": signature(signing_input, OTHER_SECRET),
        "padded": right + "=",
        "non-canonical": non_canonical(right),
        "short": right[:-1],
        "long": right + "A",
        "none": "",
    }[how]


@st.composite
def mangled(draw: st.DrawFn, token: str) -> str:
    how = draw(st.sampled_from(["cut", "dot", "space", "wrap", "swap"]))
    at = draw(st.integers(0, len(token) - 1))
    if how == "cut":
        return token[:at]
    if how == "dot":
        return token[:at] + "." + token[at:]
    if how == "space":
        return token[:at] + draw(st.sampled_from([" ", "\t", "\n"])) + token[at:]
    if how == "wrap":
        return f" {token} "
    return token[:at] + draw(st.sampled_from(["A", "é", "-", "_", "."])) + token[at + 1 :]


@st.composite
def tokens(draw: st.DrawFn) -> str:
    # Mostly one flaw or none, sometimes two.
    flaws = {draw(st.sampled_from(("none", *FLAWS)))}
    if draw(st.integers(0, 3)) == 0:
        flaws.add(draw(st.sampled_from(FLAWS)))
    header = draw(BAD_HEADERS if "header" in flaws else GOOD_HEADERS)
    claims = draw(BAD_CLAIMS if "claims" in flaws else GOOD_CLAIMS)
    header_json = draw(json_document(header, "header json" in flaws))
    payload_json = draw(json_document(claims, "payload json" in flaws))
    signing_input = (
        f"{draw(segment(header_json, 'header base64' in flaws))}."
        f"{draw(segment(payload_json, 'payload base64' in flaws))}"
    )
    if "signature" in flaws:
        token = f"{signing_input}.{draw(bad_signature(signing_input))}"
    else:
        token = f"{signing_input}.{signature(signing_input)}"
    return draw(mangled(token)) if "token" in flaws else token


SETTINGS = st.tuples(st.sampled_from([None, ISSUER]), st.sampled_from([None, AUDIENCE]))


# --- the property ---------------------------------------------------------------------------------


def assert_agree(token: str, issuer: str | None, audience: str | None) -> None:
    theirs = pyjwt_verdict(token, issuer, audience)
    ours = our_verdict(token, issuer, audience)
    if ours is not None:
        assert theirs == ours, f"we accept a token PyJWT {'reads' if theirs else 'refuses'}"
    elif theirs is not None:
        assert stricter_case(token) in STRICTER, "we refuse a token PyJWT accepts"


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=tokens(), setting=SETTINGS)
@example(token=claims_token(patient()), setting=(None, None))
@example(token=claims_token(patient(iss=ISSUER, aud=[AUDIENCE, "x"])), setting=(ISSUER, AUDIENCE))
def test_we_agree_with_pyjwt(token: str, setting: tuple[str | None, str | None]) -> None:
    assert_agree(token, *setting)


# --- named adversarial cases ---------------------------------------------------------------------


def with_header_bytes(header: bytes, claims: dict[str, Any]) -> str:
    return signed(header, json.dumps(claims).encode())


def with_payload_bytes(payload: bytes) -> str:
    return signed(json.dumps(HEADER).encode(), payload)


def _mutate(token: str, index: int, replacement: str) -> str:
    return token[:index] + replacement + token[index + 1 :]


VALID = claims_token(patient(x="abcde"))  # a payload segment with unused bits
HEAD, BODY, SIG = VALID.split(".")
AGREED: dict[str, tuple[str, tuple[str | None, str | None]]] = {
    "valid patient": (VALID, (None, None)),
    "valid admin": (claims_token({"role": "admin", "exp": FUTURE}), (None, None)),
    "valid hospital admin": (
        claims_token({"role": "hospital_admin", "hospital_id": "h1", "exp": FUTURE}),
        (None, None),
    ),
    "hospital admin without hospital": (
        claims_token({"role": "hospital_admin", "exp": FUTURE}),
        (None, None),
    ),
    "alg none": (jwt.encode(patient(), None, algorithm="none"), (None, None)),
    "alg none, our signature": (
        claims_token(patient(), {"alg": "none", "typ": "JWT"}),
        (None, None),
    ),
    "HS512": (jwt.encode(patient(), SECRET + SECRET, algorithm="HS512"), (None, None)),
    "no alg": (claims_token(patient(), {"typ": "JWT"}), (None, None)),
    "typ jwt lower case": (claims_token(patient(), {"alg": "HS256", "typ": "jwt"}), (None, None)),
    "typ absent": (claims_token(patient(), {"alg": "HS256"}), (None, None)),
    "extra header fields": (
        claims_token(patient(), {"alg": "HS256", "jku": "https://x", "x5u": "y", "zip": "DEF"}),
        (None, None),
    ),
    "kid not a string": (claims_token(patient(), {"alg": "HS256", "kid": 7}), (None, None)),
    "b64 false": (claims_token(patient(), {"alg": "HS256", "b64": False}), (None, None)),
    "duplicate alg, none last": (
        with_header_bytes(b'{"alg":"HS256","alg":"none"}', patient()),
        (None, None),
    ),
    "duplicate alg, HS256 last": (
        with_header_bytes(b'{"alg":"none","alg":"HS256"}', patient()),
        (None, None),
    ),
    "duplicate sub": (
        with_payload_bytes(json_object([*patient().items(), ("sub", "p2")])),
        (None, None),
    ),
    "duplicate exp, expired last": (
        with_payload_bytes(json_object([*patient().items(), ("exp", PAST)])),
        (None, None),
    ),
    "exp past 64 bits": (claims_token(patient(exp=2**64 + 12345)), (None, None)),
    "exp far past 64 bits": (claims_token(patient(exp=10**30)), (None, None)),
    "exp hugely negative": (claims_token(patient(exp=-(10**30))), (None, None)),
    "exp a float": (claims_token(patient(exp=FUTURE + 0.75)), (None, None)),
    "exp not a number": (claims_token(patient(exp="tomorrow")), (None, None)),
    "exp null": (claims_token(patient(exp=None)), (None, None)),
    "exp NaN": (with_payload_bytes(b'{"sub":"p1","exp":NaN}'), (None, None)),
    "expired": (claims_token(patient(exp=PAST)), (None, None)),
    "not yet valid (nbf)": (claims_token(patient(nbf=FUTURE)), (None, None)),
    "issued in the future (iat)": (claims_token(patient(iat=FUTURE)), (None, None)),
    "iat null": (claims_token(patient(iat=None)), (None, None)),
    "no exp": (claims_token({"sub": "p1"}), (None, None)),
    "sub not a string": (claims_token(patient(sub=42)), (None, None)),
    "admin with a null sub": (
        claims_token({"role": "admin", "sub": None, "exp": FUTURE}),
        (None, None),
    ),
    "sub not an id": (claims_token(patient(sub="p 1")), (None, None)),
    "jti not a string": (claims_token(patient(jti=5)), (None, None)),
    "payload an array": (with_payload_bytes(b'[{"sub":"p1"}]'), (None, None)),
    "payload a string": (with_payload_bytes(b'"p1"'), (None, None)),
    "payload not UTF-8": (with_payload_bytes(b'{"sub":"p\xff1","exp":%d}' % FUTURE), (None, None)),
    "iss wrong": (claims_token(patient(iss="issuer-b")), (ISSUER, None)),
    "iss missing": (claims_token(patient()), (ISSUER, None)),
    "iss right": (claims_token(patient(iss=ISSUER)), (ISSUER, None)),
    "iss unchecked when not set": (claims_token(patient(iss=5)), (None, None)),
    "aud string": (claims_token(patient(aud=AUDIENCE)), (None, AUDIENCE)),
    "aud list": (claims_token(patient(aud=["x", AUDIENCE])), (None, AUDIENCE)),
    "aud wrong": (claims_token(patient(aud=["x"])), (None, AUDIENCE)),
    "aud missing": (claims_token(patient()), (None, AUDIENCE)),
    "aud with a number": (claims_token(patient(aud=[AUDIENCE, 1])), (None, AUDIENCE)),
    "aud unexpected": (claims_token(patient(aud=AUDIENCE)), (None, None)),
    "aud empty, none expected": (claims_token(patient(aud=[])), (None, None)),
    "signature one bit off": (VALID[:-10] + flip_bit(VALID[-10:], 3), (None, None)),
    "signature non-canonical": (f"{HEAD}.{BODY}.{non_canonical(SIG)}", (None, None)),
    "payload non-canonical": (resigned(HEAD, non_canonical(BODY)), (None, None)),
    "signature of another key": (
        f"{HEAD}.{BODY}.{signature(f'{HEAD}.{BODY}', OTHER_SECRET)}",
        (None, None),
    ),
    "truncated": (VALID[:-1], (None, None)),
    "two segments": (f"{HEAD}.{BODY}", (None, None)),
    "extra dot": (VALID + ".", (None, None)),
    "four segments": (VALID + ".e30", (None, None)),
    "leading space": (" " + VALID, (None, None)),
    "inner space": (_mutate(VALID, 20, " "), (None, None)),
    "character outside base64url": (_mutate(VALID, 5, "!"), (None, None)),
    "standard base64 character": (_mutate(VALID, 5, "+"), (None, None)),
    "non-ASCII character": (_mutate(VALID, 5, "é"), (None, None)),
}


@pytest.mark.parametrize("case", sorted(AGREED))
def test_named_adversarial_tokens(case: str) -> None:
    token, setting = AGREED[case]
    theirs, ours = pyjwt_verdict(token, *setting), our_verdict(token, *setting)
    assert theirs == ours, case


def test_the_named_cases_are_not_all_refusals() -> None:
    accepted = {case for case, (token, s) in AGREED.items() if our_verdict(token, *s)}
    assert {"valid patient", "duplicate sub", "exp past 64 bits", "aud list"} <= accepted


STRICTER_EXAMPLES: dict[str, tuple[str, str]] = {
    "padded segments": ("padded base64url", padded(claims_token(patient(x="ab")))),
    "crit b64 true": (
        "critical header extension",
        claims_token(patient(), {"alg": "HS256", "b64": True, "crit": ["b64"]}),
    ),
    "NaN in a claim": (
        "JSON that orjson refuses",
        with_payload_bytes(b'{"sub":"p1","exp":%d,"x":NaN}' % FUTURE),
    ),
    "number beyond a double": (
        "JSON that orjson refuses",
        with_payload_bytes(b'{"sub":"p1","exp":%d,"x":1e400}' % FUTURE),
    ),
    "byte-order mark": (
        "JSON that orjson refuses",
        with_payload_bytes(b"\xef\xbb\xbf" + json.dumps(patient()).encode()),
    ),
    "UTF-16 payload": (
        "JSON that orjson refuses",
        with_payload_bytes(json.dumps(patient()).encode("utf-16")),
    ),
    "escaped lone surrogate": (
        "JSON that orjson refuses",
        with_payload_bytes(json.dumps(patient(x="\ud800")).encode()),
    ),
    "encoded surrogate": (
        "JSON that orjson refuses",
        with_payload_bytes(
            json.dumps(patient(), ensure_ascii=False).encode()[:-1] + b',"x":"\xed\xa0\x80"}'
        ),
    ),
    "nbf true": ("time claim that is not a JSON number", claims_token(patient(nbf=True))),
    "iat a digit string": (
        "time claim that is not a JSON number",
        claims_token(patient(iat=str(PAST))),
    ),
    "exp a digit string": (
        "time claim that is not a JSON number",
        claims_token(patient(exp=str(FUTURE))),
    ),
}


@pytest.mark.parametrize("case", sorted(STRICTER_EXAMPLES))
def test_where_we_are_stricter_than_pyjwt(case: str) -> None:
    name, token = STRICTER_EXAMPLES[case]
    assert name in STRICTER
    assert pyjwt_verdict(token, None, None) is not None, "PyJWT accepts it"
    assert our_verdict(token, None, None) is None, "we refuse it"
    assert stricter_case(token) == name
