"""The registered claims of a verified token's payload (RFC 7519 4.1), checked as PyJWT does.

Every rule mirrors `jwt.decode(..., options={"require": ["exp"]}, issuer=, audience=)`, except
where it is deliberately stricter: a time claim must be a JSON number (PyJWT also takes
`true` and digit strings through `int()`), and the payload is parsed by orjson, which refuses
NaN, Infinity, numbers past a double's range, a byte-order mark, UTF-16 or UTF-32 text and
unpaired surrogates, all of which Python's `json` module accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from core.domain import Code
from core.errors import SlotrushError

_NUMBERS: Final = (int, float)


def invalid(reason: str) -> SlotrushError:
    """The one error every token check raises; `reason` never quotes the token."""
    return SlotrushError(Code.UNAUTHORIZED, reason)


def parse_payload(payload: bytes) -> dict[str, Any]:
    """The claims object of a verified payload."""
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise invalid("the token's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise invalid("the token's payload is not a JSON object")
    return claims


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What a payload must say to be accepted now: `iss` equal to `issuer` and `aud` naming
    `audience`, each when set; `exp` required; `nbf` and `iat` not in the future."""

    issuer: str | None = None
    audience: str | None = None

    def expiry(self, claims: dict[str, Any], now: float) -> int:
        """The token's `exp` in whole seconds, once every claim checks out at `now`."""
        if claims.get("exp") is None:
            raise invalid("the token lacks the 'exp' claim")
        expires = _seconds(claims, "exp")
        if expires <= now:
            raise invalid("the token has expired")
        if "iat" in claims and _seconds(claims, "iat") > now:
            raise invalid("the token was issued in the future (iat)")
        if "nbf" in claims and _seconds(claims, "nbf") > now:
            raise invalid("the token is not valid yet (nbf)")
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise invalid("the token's issuer (iss) is not the one this server trusts")
        if self.audience is not None or claims.get("aud"):
            self._check_audience(claims.get("aud"))
        if "sub" in claims and type(claims["sub"]) is not str:
            raise invalid("the token's 'sub' claim is not a string")
        if "jti" in claims and type(claims["jti"]) is not str:
            raise invalid("the token's 'jti' claim is not a string")
        return expires

    def _check_audience(self, audience: Any) -> None:
        # RFC 7519 4.1.3: one string or an array of strings. As in PyJWT, an empty value is
        # the same as none.
        if not audience:
            raise invalid("the token lacks the 'aud' claim")
        names = [audience] if type(audience) is str else audience
        if type(names) is not list or any(type(name) is not str for name in names):
            raise invalid("the token's audience (aud) is not a string or a list of strings")
        if self.audience not in names:
            # Also when this server expects none: then no audience names it.
            raise invalid("the token's audience (aud) does not name this server")


def _seconds(claims: dict[str, Any], name: str) -> int:
    # A NumericDate (RFC 7519 2), truncated to whole seconds as PyJWT's int() does. orjson
    # gives exactly int or float for a JSON number, never bool.
    value = claims[name]
    if type(value) not in _NUMBERS:
        raise invalid(f"the token's {name!r} claim is not a number")
    return int(value)
