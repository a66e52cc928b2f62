"""CORS, so a front end served from another origin can call the API from a browser.

Off unless SLOTRUSH_CORS_ORIGINS names origins: then this middleware, outermost, answers
every route's preflight (OPTIONS with Access-Control-Request-Method) for an allowed origin,
and marks every answer to one, errors and the sold-out fast path's included, as readable by
it. An origin not listed gets no CORS headers at all, so its browser refuses the answer.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

# What a front end sends beyond the CORS-safelisted headers.
ALLOWED_HEADERS: Final = (
    "Authorization, Cache-Control, Content-Type, Idempotency-Key, If-None-Match, "
    "Waiting-Room-Token, Waiting-Room-Admission"
)
# What a front end may read beyond the CORS-safelisted response headers.
EXPOSED_HEADERS: Final = "ETag, Retry-After, WWW-Authenticate"
# Browsers keep a preflight's answer this long (seconds; Chromium caps it at 7200).
PREFLIGHT_MAX_AGE: Final = "600"
_ORIGIN: Final = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def parse_origins(raw: str) -> tuple[str, ...]:
    """The origins of a comma-separated list (empty: none); ValueError naming one that is
    not `scheme://host[:port]`, which is all a browser's Origin header ever is."""
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"SLOTRUSH_CORS_ORIGINS: {origin!r} is not an origin such as "
                "https://app.example.org or http://127.0.0.1:3000 (no path, no slash at the end)"
            )
    return origins


def cors(origins: Collection[str]) -> Middleware:
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin not in allowed:
            response = await handler(request)
        elif (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
            and isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed)
        ):
            return _preflight(origin, request.match_info.http_exception.allowed_methods)
        else:
            response = await handler(request)
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
        # Answers differ by origin: a shared cache must not hand one origin's to another.
        response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        return response

    return middleware


def _preflight(origin: str, methods: Collection[str]) -> web.Response:
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(sorted(methods)),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
            hdrs.VARY: hdrs.ORIGIN,
        },
    )
